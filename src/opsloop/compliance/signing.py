"""The audit signing key: Ed25519, kept out of the database (`OPSLOOP_AUDIT_SIGNING_KEY`).

`opsloop audit keygen DIR` writes the pair as PEM files (PKCS#8 private key,
mode 0600; SubjectPublicKeyInfo public key), the formats `openssl` reads. A
key is named by its id: the SHA-256 of the public key's DER encoding, which
an auditor computes with `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opsloop.errors import ConfigError, InvalidInput

PRIVATE_NAME = "audit-signing-key.pem"
PUBLIC_NAME = "audit-signing-key.pub.pem"
MAX_KEY_FILE = 16 * 1024


class Verifier:
    """A public key: checks signatures."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self.key = key
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        self.pem = key.public_bytes(serialization.Encoding.PEM, spki)
        der = key.public_bytes(serialization.Encoding.DER, spki)
        self.key_id = hashlib.sha256(der).hexdigest()

    @classmethod
    def from_pem(cls, data: bytes, *, source: str) -> Verifier:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise InvalidInput(f"{source}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInput(f"{source}: not an Ed25519 public key")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> Verifier:
        return cls.from_pem(_read(path, InvalidInput), source=str(path))

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class Signer:
    """The private key: signs checkpoints (and an evidence bundle's checksums)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public = Verifier(key.public_key())

    @classmethod
    def load(cls, path: Path) -> Signer:
        """Read the key named by OPSLOOP_AUDIT_SIGNING_KEY; problems are a ConfigError naming the file."""
        where = f"OPSLOOP_AUDIT_SIGNING_KEY: {path}"
        data = _read(path, ConfigError, where)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            reason = "it is encrypted" if "password" in str(error).lower() else "not a PEM private key"
            raise ConfigError(f"{where}: cannot use it: {reason}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{where}: not an Ed25519 key (make one with `opsloop audit keygen DIR`)")
        return cls(key)

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def _read(path: Path, error: type[Exception], where: str | None = None) -> bytes:
    where = where or str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as failure:
        raise error(f"{where}: cannot read: {failure.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise error(f"{where}: too large for a key file")
    return data


def generate(directory: Path) -> tuple[Path, Path]:
    """Write a new key pair into `directory`; never overwrites an existing key."""
    private, public = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    for path in (private, public):
        if path.exists():
            raise InvalidInput(f"{path} exists already: a signing key is never overwritten")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise InvalidInput(f"{directory}: cannot create: {failure.strerror}") from None
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # created 0600 (readable by its owner only) before a byte of the key is written
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public.write_bytes(Verifier(key.public_key()).pem)
    return private, public
