"""Typed repositories (agents/state.py): records round-trip through the agent's SQLite store, keyed and ordered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from agents.state import Record, Repository, key
from agents.store import AgentStore


class Item(Record):
    name: str
    count: int = 0
    tags: list[str] = Field(default_factory=list)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AgentStore]:
    opened = AgentStore(tmp_path / "state.sqlite3")
    yield opened
    opened.close()


def test_repository_putGetRoundTripsTypedRecord(store: AgentStore) -> None:
    items = Repository(store, "items", Item)
    items.put("k", Item(name="first", count=3, tags=["a", "b"]))

    found = items.get("k")

    assert isinstance(found, Item)
    assert found == Item(name="first", count=3, tags=["a", "b"])
    assert items.get("missing") is None
    items.put("k", Item(name="second"))
    assert items.get("k") == Item(name="second")
    items.delete("k")
    assert items.get("k") is None


def test_repository_addRefusesExistingKey(store: AgentStore) -> None:
    items = Repository(store, "items", Item)

    assert items.add("k", Item(name="original")) is True
    assert items.add("k", Item(name="usurper")) is False
    assert items.get("k") == Item(name="original")
    assert len(items) == 1


def test_repository_itemsInKeyOrderWithinNamespace(store: AgentStore) -> None:
    items, neighbours = Repository(store, "items", Item), Repository(store, "items2", Item)
    for name in ("b", "a:1", "c", "a"):
        items.put(name, Item(name=name))
    neighbours.put("0", Item(name="neighbour"))
    store.put("items", {"name": "not in any namespace"})

    listed = list(items.items())

    assert [k for k, _ in listed] == ["a", "a:1", "b", "c"]
    assert [record.name for _, record in listed] == ["a", "a:1", "b", "c"]
    assert [record.name for record in items.values()] == ["a", "a:1", "b", "c"]
    assert len(items) == 4
    assert [record.name for record in neighbours.values()] == ["neighbour"]


def test_repository_survivesReopeningStore(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "state.sqlite3"
    first = AgentStore(path)
    Repository(first, "items", Item).put("k", Item(name="kept", count=7))
    first.close()

    reopened = AgentStore(path)
    try:
        items = Repository(reopened, "items", Item)
        assert items.get("k") == Item(name="kept", count=7)
        assert items.add("k", Item(name="again")) is False
    finally:
        reopened.close()


def test_repository_unknownStoredFieldFailsLoudly(store: AgentStore) -> None:
    store.put("items/old", {"name": "renamed", "cnt": 1})

    with pytest.raises(ValidationError):
        Repository(store, "items", Item).get("old")


def test_repository_namespaceWithSlashRefused(store: AgentStore) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        Repository(store, "a/b", Item)


def test_key_distinctPartsGiveDistinctKeys() -> None:
    assert key("a:b", "c") != key("a", "b:c")
    assert key("a\\", "b") != key("a", "\\b")
    assert key("agent1q", "job-1") == "agent1q:job-1"
