"""Typed state repositories: each capability keeps its records as pydantic models in the agent's durable store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from agents.store import AgentStore

T = TypeVar("T", bound=BaseModel)


class Record(BaseModel):
    """Base class of stored records: unknown keys are refused, so a renamed field fails loudly on load."""

    model_config = ConfigDict(extra="forbid")


class Repository(Generic[T]):
    """Records of one type under one namespace of an agent's store (`<namespace>/<key>`), typed both ways."""

    def __init__(self, store: AgentStore, namespace: str, model: type[T]) -> None:
        if "/" in namespace:
            raise ValueError(f"namespace {namespace!r} must not contain '/'")
        self._store = store
        self._prefix = namespace + "/"
        self._model = model

    def get(self, key: str) -> T | None:
        """The record stored under `key`, or None."""
        raw = self._store.get(self._prefix + key)
        return None if raw is None else self._model.model_validate(raw)

    def put(self, key: str, record: T) -> None:
        """Create or replace the record under `key`."""
        self._store.put(self._prefix + key, record.model_dump(mode="json"))

    def add(self, key: str, record: T) -> bool:
        """Store `record` only if `key` is new; False (and nothing written) when it already exists."""
        return self._store.put_new(self._prefix + key, record.model_dump(mode="json"))

    def delete(self, key: str) -> None:
        """Forget the record under `key` (no error if absent)."""
        self._store.delete(self._prefix + key)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every (key, record), in key order."""
        for key, raw in self._store.scan(self._prefix):
            yield key.removeprefix(self._prefix), self._model.model_validate(raw)

    def values(self) -> list[T]:
        """Every record, in key order."""
        return [record for _, record in self.items()]

    def __len__(self) -> int:
        return sum(1 for _ in self._store.scan(self._prefix))


def key(*parts: object) -> str:
    """A repository key made of parts (addresses, ids), joined so that distinct tuples give distinct keys."""
    return ":".join(str(part).replace("\\", "\\\\").replace(":", "\\:") for part in parts)
