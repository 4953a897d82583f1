"""A directory of `<id>.yaml` files (runbooks, playbooks), read from disk on every call.

Reading again each time is cheap (a handful of small files) and means whatever
starts now starts from the file as it is now. A subclass says how a file's bytes
are parsed and how an unknown id is answered; the directory, the ids and the
reading are the same for every kind of file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Generic, TypeVar

from opsloop.errors import ConfigError, NotFound

Loaded = TypeVar("Loaded")


class YamlDirectory(ABC, Generic[Loaded]):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @abstractmethod
    def parse_file(self, data: bytes, source: str, expected_id: str) -> Loaded:
        """The file's contents, validated (a ConfigError names `source` and what is wrong)."""

    @abstractmethod
    def unknown(self, file_id: str) -> str:
        """The NotFound message for an id with no file."""

    def path(self, file_id: str) -> Path:
        return self.directory / f"{file_id}.yaml"

    def ids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.yaml"))

    def load(self, file_id: str) -> Loaded:
        path = self.path(file_id)
        if "/" in file_id or not path.is_file():
            raise NotFound(self.unknown(file_id))
        return self.load_path(path)

    def load_path(self, path: Path) -> Loaded:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
        return self.parse_file(data, str(path), path.stem)

    def load_all(self) -> Iterator[tuple[str, Loaded | ConfigError]]:
        """Every file, loaded, or the error that stopped it."""
        for file_id in self.ids():
            try:
                yield file_id, self.load_path(self.path(file_id))
            except ConfigError as error:
                yield file_id, error
