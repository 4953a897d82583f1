"""Outbox senders for transports other than chat: email (SMTP) and webhooks (HTTP)."""
