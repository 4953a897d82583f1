"""The outbox's file transport: writes a message's file into a directory (the target).

Used for copies of signed audit checkpoints (`audit.checkpoint_to: DIR`). A
file is written once: atomically, and never over a file with other content
(see opsloop.compliance.files); delivering the same message again is a no-op.
"""

from __future__ import annotations

from pathlib import Path

from opsloop.compliance.files import WriteRefused, write_once
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, DeliveryError, PermanentDeliveryError


class FileSender:
    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        name, content = message.payload.get("name"), message.payload.get("content")
        if not isinstance(name, str) or not isinstance(content, str):
            raise PermanentDeliveryError("a file message needs a name and a content")
        try:
            path = write_once(Path(message.target), name, content.encode())
        except WriteRefused as refused:
            raise PermanentDeliveryError(str(refused)) from None
        except OSError as error:  # a full disk, a missing mount: it may pass
            raise DeliveryError(f"cannot write into {message.target}: {error.strerror}") from None
        return Delivered(external_id=path.name, external_target=message.target)
