"""Email over SMTP (`OPSLOOP_SMTP_URL`: smtp://[user:password@]host:port, or smtps://)."""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from opsloop.errors import ConfigError
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, DeliveryError, PermanentDeliveryError


class SmtpSender:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("OPSLOOP_SMTP_URL: write smtp://host:port or smtps://host:port")
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.ssl else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        email = EmailMessage()
        email["From"] = message.payload["from"]
        email["To"] = message.target
        email["Subject"] = message.payload["subject"]
        # the same outbox message always has the same Message-ID: a retry is recognisably one
        message_id = f"<{hashlib.sha256(message.key.encode()).hexdigest()[:32]}@opsloop>"
        email["Message-ID"] = message_id
        email.set_content(message.payload["body"])
        try:
            smtp_class = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
            with smtp_class(self.host, self.port, timeout=self.timeout) as smtp:
                if self.user and self.password:
                    smtp.login(self.user, self.password)
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            raise PermanentDeliveryError(f"recipient refused: {list(error.recipients)}") from None
        except smtplib.SMTPResponseException as error:
            reason = f"SMTP {error.smtp_code}"
            if 400 <= error.smtp_code < 500:
                raise DeliveryError(reason) from None
            raise PermanentDeliveryError(reason) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"mail server {self.host}:{self.port} unreachable: "
                                f"{type(error).__name__}") from None
        return Delivered(external_id=message_id, external_target=message.target)
