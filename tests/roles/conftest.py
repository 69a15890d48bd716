"""Role fixtures: one anvil for the session (tests/conftest.py), rolled back after each test, and a fresh World."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from uagents.dispatch import dispatcher

from marketplace.chain import ChainConnection, LocalChain
from tests.roles.world import World, world


@pytest.fixture
async def economy(chain: LocalChain, conn: ChainConnection, tmp_path: Path) -> AsyncIterator[World]:
    """A registry, an operator and a helper to build roles, on the session chain (reverted after the test)."""
    async with world(chain, conn, tmp_path) as w:
        yield w


@pytest.fixture(autouse=True)
def _dispatcher_clean() -> Iterator[None]:
    """uAgents registers agents process-wide and never forgets them: fail a test that leaks one."""
    before = set(dispatcher.sinks)
    yield
    leaked = set(dispatcher.sinks) - before
    for address in leaked:
        dispatcher.sinks.pop(address, None)
    assert not leaked, f"agents left registered in the uAgents dispatcher: {leaked}"
