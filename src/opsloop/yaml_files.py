"""A directory of `<id>.yaml` files (runbooks, playbooks), read from disk on every call.

Reading again each time is cheap (a handful of small files) and means whatever
starts now starts from the file as it is now. A subclass says how a file's bytes
are parsed and how an unknown id is answered; the directory, the ids and the
reading are the same for every kind of file, and so is validating one file's
bytes (`validated`): its size, UTF-8, YAML, a mapping, the kind's model, the id.

YAML is read as the policy file is (`StrictLoader`): a key given twice is refused
(PyYAML would keep the last of two).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import yaml
from pydantic import ValidationError

from opsloop.errors import ConfigError, NotFound

Loaded = TypeVar("Loaded")
# pydantic's errors in a kind's words, one line each (the caller puts the file's name first)
Problems = Callable[[ValidationError, dict[str, Any]], list[str]]


class FileModel(Protocol):
    """The model of a kind of file (a Runbook, a Playbook): validates a mapping, declares an id."""

    @property
    def id(self) -> str: ...

    @classmethod
    def model_validate(cls, obj: Any) -> Self: ...


Model = TypeVar("Model", bound=FileModel)


class StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a policy, runbook or playbook file must not."""


def _no_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def validated(model: type[Model], data: bytes, source: str, expected_id: str | None, *, at_most: int,
              kind: str, problems: Problems) -> Model:
    """A `kind` file's bytes (at most `at_most`) validated as `model`, its id the file's name when it
    was found by name (`expected_id`). A ConfigError names `source` and each problem.

    The result depends only on the arguments and the models are frozen, so it is memoised: a
    file read again (an edit counts at once) is validated again only when its bytes changed.
    Errors are not cached."""
    return cast(Model, _validated(model, data, source, expected_id, at_most, kind, problems))


@lru_cache(maxsize=384)
def _validated(model: type[FileModel], data: bytes, source: str, expected_id: str | None, at_most: int,
               kind: str, problems: Problems) -> FileModel:
    raw = _mapping(data, source, at_most, kind)
    try:
        found = model.model_validate(raw)
    except ValidationError as error:
        raise ConfigError("\n".join(f"{source}: {line}" for line in problems(error, raw))) from None
    if expected_id is not None and found.id != expected_id:
        raise ConfigError(f"{source}: id: {found.id!r} must match the file name ({expected_id}.yaml)")
    return found


def _mapping(data: bytes, source: str, at_most: int, kind: str) -> dict[str, Any]:
    if len(data) > at_most:
        raise ConfigError(f"{source}: the file is {len(data)} bytes; at most {at_most}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        raw = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: invalid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a {kind} is a mapping (schema_version, id, version, steps, ...)")
    return raw


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
