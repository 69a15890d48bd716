"""Fixtures for attack tests with real agents: the session chain rolled back per test, and a World of roles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from marketplace.chain import ChainConnection, LocalChain, StakingClient
from tests.roles.world import World, world


@pytest.fixture
def chain(session_chain: LocalChain) -> Iterator[LocalChain]:
    """The session chain rolled back after each test, without the attack package's funded actors.

    Their staked validators are no agents: drawn onto committees, they would never vote.
    """
    snapshot = session_chain.snapshot()
    yield session_chain
    session_chain.revert(snapshot)


@pytest.fixture
async def economy(chain: LocalChain, conn: ChainConnection, tmp_path: Path) -> AsyncIterator[World]:
    """A registry, an operator and role builders; the only stakers are the ones the test makes."""
    keys = {account.address.lower(): account for account in chain.accounts}
    for staker in await StakingClient(conn).validators():  # left by other attack tests' package fixture
        account = keys[staker.lower()]
        as_staker = StakingClient(conn.with_account(account))
        await as_staker.request_unstake((await as_staker.stake_of(staker)).active)
    async with world(chain, conn, tmp_path) as w:
        yield w
