"""Fixtures for the settlement contracts: funded actors on the shared anvil, and typed clients per signer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain import (
    AdCampaignsClient,
    AgentRegistryClient,
    ChainConnection,
    ChannelsClient,
    EscrowClient,
    FederatedRewardsClient,
    LocalChain,
    ModelRegistryClient,
    StakingClient,
    TokenClient,
)
from marketplace.chain.client import ContractRevert

AGT = 10**18
FUNDING = 1_000_000 * AGT
"""What each actor receives from the treasury."""
VALIDATOR_STAKE = 1_000 * AGT
MAX_ALLOWANCE = 2**256 - 1
SPENDERS = ("JobEscrow", "PaymentChannels", "ValidatorStaking", "FederatedRewards", "AdCampaigns")


@dataclass(frozen=True)
class Actors:
    """Named dev accounts; the three validators have staked VALIDATOR_STAKE each."""

    treasury: LocalAccount
    alice: LocalAccount
    """A client / channel sender."""
    bob: LocalAccount
    """A provider / channel recipient / model creator."""
    carol: LocalAccount
    dave: LocalAccount
    val1: LocalAccount
    val2: LocalAccount
    val3: LocalAccount
    outsider: LocalAccount
    """Funded and approved, but no validator."""

    @property
    def validators(self) -> tuple[LocalAccount, LocalAccount, LocalAccount]:
        """The three staked validators."""
        return (self.val1, self.val2, self.val3)

    @property
    def everyone(self) -> tuple[LocalAccount, ...]:
        """Every actor except the treasury."""
        return (self.alice, self.bob, self.carol, self.dave, self.val1, self.val2, self.val3, self.outsider)


async def _fund(chain: LocalChain, actors: Actors) -> None:
    async with chain.connect() as conn:
        token = TokenClient(conn)
        for account in actors.everyone:
            await token.transfer(account.address, FUNDING)
        for account in actors.everyone:
            signer = TokenClient(conn.with_account(account))
            for name in SPENDERS:
                await signer.approve(chain.deployment.address(name), MAX_ALLOWANCE)
        for validator in actors.validators:
            await StakingClient(conn.with_account(validator)).stake(VALIDATOR_STAKE)


@pytest.fixture(scope="package")
def actors(session_chain: LocalChain) -> Iterator[Actors]:
    """Funded, approved actors (validators staked); rolled back when the contracts package is done."""
    snapshot = session_chain.snapshot()
    a = session_chain.accounts
    cast = Actors(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8])
    asyncio.run(_fund(session_chain, cast))
    yield cast
    session_chain.revert(snapshot)


@pytest.fixture
def chain(actors: Actors, session_chain: LocalChain) -> Iterator[LocalChain]:
    """The funded chain, rolled back after each test."""
    snapshot = session_chain.snapshot()
    yield session_chain
    session_chain.revert(snapshot)


@dataclass(frozen=True)
class Clients:
    """Every typed client for one signer."""

    token: TokenClient
    agents: AgentRegistryClient
    models: ModelRegistryClient
    escrow: EscrowClient
    channels: ChannelsClient
    staking: StakingClient
    federated: FederatedRewardsClient
    ads: AdCampaignsClient


def clients_for(conn: ChainConnection, account: LocalAccount) -> Clients:
    """All clients signing as `account` over conn's transport."""
    signer = conn.with_account(account)
    return Clients(
        TokenClient(signer),
        AgentRegistryClient(signer),
        ModelRegistryClient(signer),
        EscrowClient(signer),
        ChannelsClient(signer),
        StakingClient(signer),
        FederatedRewardsClient(signer),
        AdCampaignsClient(signer),
    )


async def block_time(conn: ChainConnection) -> int:
    """Timestamp of the latest block."""
    block = await conn.w3.eth.get_block("latest")
    return int(block["timestamp"])


async def expect_revert(name: str, call: Awaitable[object]) -> ContractRevert:
    """Await `call` and assert it reverts with the custom error `name`; returns the revert."""
    with pytest.raises(ContractRevert) as caught:
        await call
    assert caught.value.name == name, caught.value
    return caught.value
