"""Email over SMTP (`OPSLOOP_SMTP_URL`: smtp://[user:password@]host:port, or smtps://).

One send ends within `deadline` seconds however slowly the server talks:
smtplib's timeout bounds each read, so a server dripping its replies is cut
by a timer that shuts the connection's socket down at the deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import socket
import threading
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from opsloop.errors import ConfigError
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, DeliveryError, PermanentDeliveryError


class SmtpSender:
    def __init__(self, url: str, *, timeout: float = 10.0, deadline: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("OPSLOOP_SMTP_URL: write smtp://host:port or smtps://host:port")
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.ssl else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.deadline = deadline

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        email = EmailMessage()
        email["From"] = message.payload["from"]
        email["To"] = message.target
        email["Subject"] = message.payload["subject"]
        # the same outbox message always has the same Message-ID: a retry is recognisably one
        message_id = f"<{hashlib.sha256(message.key.encode()).hexdigest()[:32]}@opsloop>"
        email["Message-ID"] = message_id
        email.set_content(message.payload["body"])
        smtp = (smtplib.SMTP_SSL if self.ssl else smtplib.SMTP)(timeout=min(self.timeout, self.deadline))
        expired = threading.Event()

        def cut() -> None:  # wakes a read blocked on the socket: smtplib then sees a closed connection
            expired.set()
            if smtp.sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    smtp.sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.deadline, cut)
        timer.daemon = True
        timer.start()
        try:
            with smtp:
                smtp.connect(self.host, self.port)
                if self.user and self.password:
                    smtp.login(self.user, self.password)
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as error:
            if expired.is_set():
                raise DeliveryError(f"mail server {self.host}:{self.port} did not finish within "
                                    f"{self.deadline:g}s") from None
            raise self._failure(error) from None
        finally:
            timer.cancel()
        return Delivered(external_id=message_id, external_target=message.target)

    def _failure(self, error: Exception) -> Exception:
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            return PermanentDeliveryError(f"recipient refused: {list(error.recipients)}")
        if isinstance(error, smtplib.SMTPResponseException):
            reason = f"SMTP {error.smtp_code}"
            return DeliveryError(reason) if 400 <= error.smtp_code < 500 else PermanentDeliveryError(reason)
        return DeliveryError(f"mail server {self.host}:{self.port} unreachable: {type(error).__name__}")
