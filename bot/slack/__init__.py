"""Slack: the Bolt app and its listeners, Block Kit rendering, the outbox sender, user groups."""
