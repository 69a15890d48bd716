"""AgentRegistry on anvil: identities, recorder permissions, receipt-backed reputation."""

from __future__ import annotations

import pytest

from marketplace.chain import AgentRole, ChainConnection, LocalChain, Reputation
from tests.contracts.conftest import Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain


async def test_register_storesIdentity(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    event = await bob.agents.register("agent1qbob", AgentRole.SELLER, "http://registry/cards/bob")
    assert (event.owner, event.role) == (actors.bob.address, AgentRole.SELLER)
    record = await bob.agents.agent_of(actors.bob.address)
    assert record is not None
    assert (record.agent_address, record.role, record.metadata_uri) == (
        "agent1qbob",
        AgentRole.SELLER,
        "http://registry/cards/bob",
    )
    assert await bob.agents.agent_of(actors.carol.address) is None


async def test_register_revertsOnEmptyAgentAddress(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("EmptyAgentAddress", clients_for(conn, actors.bob).agents.register("", AgentRole.USER))


async def test_updateMetadata_changesUri(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    await bob.agents.register("agent1qbob", AgentRole.SELLER, "old")
    await bob.agents.update_metadata("new")
    record = await bob.agents.agent_of(actors.bob.address)
    assert record is not None
    assert record.metadata_uri == "new"


async def test_updateMetadata_revertsWhenUnregistered(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("AgentNotRegistered", clients_for(conn, actors.bob).agents.update_metadata("x"))
    assert error.args_values == (actors.bob.address,)


async def test_deploy_wiresEscrowAndChannelsAsRecorders(chain: LocalChain, conn: ChainConnection) -> None:
    agents = clients_for(conn, chain.treasury).agents
    assert await agents.is_recorder(chain.deployment.address("JobEscrow"))
    assert await agents.is_recorder(chain.deployment.address("PaymentChannels"))
    assert not await agents.is_recorder(chain.treasury.address)


async def test_recordReceipt_revertsForArbitraryCaller(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.carol).agents.record_receipt(actors.bob.address, 100, 10**18, b"\x01" * 32)
    error = await expect_revert("NotRecorder", call)
    assert error.args_values == (actors.carol.address,)
    assert await clients_for(conn, actors.carol).agents.reputation(actors.bob.address) == Reputation(0, 0, 0)


async def test_recordReceipt_aggregatesVolumeWeightedScore(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    admin = clients_for(conn, chain.treasury).agents
    await admin.set_recorder(actors.dave.address, True)
    recorder = clients_for(conn, actors.dave).agents
    event = await recorder.record_receipt(actors.bob.address, 100, 300, b"\x01" * 32)
    assert (event.subject, event.recorder, event.score, event.amount) == (
        actors.bob.address,
        actors.dave.address,
        100,
        300,
    )
    await recorder.record_receipt(actors.bob.address, 0, 100, b"\x02" * 32)
    assert await admin.reputation(actors.bob.address) == Reputation(2, 400, 7_500)


async def test_recordReceipt_revertsOnScoreAbove100(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, chain.treasury).agents.set_recorder(actors.dave.address, True)
    call = clients_for(conn, actors.dave).agents.record_receipt(actors.bob.address, 101, 1, b"\x01" * 32)
    await expect_revert("ScoreOutOfRange", call)


async def test_setRecorder_revertsForNonOwner(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.carol).agents.set_recorder(actors.carol.address, True)
    error = await expect_revert("OwnableUnauthorizedAccount", call)
    assert error.args_values == (actors.carol.address,)


async def test_setRecorder_revertsOnZeroAddress(chain: LocalChain, conn: ChainConnection) -> None:
    await expect_revert("ZeroAddress", clients_for(conn, chain.treasury).agents.set_recorder("0x" + "00" * 20, True))


async def test_setRecorder_revokesRecorder(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    admin = clients_for(conn, chain.treasury).agents
    await admin.set_recorder(actors.dave.address, True)
    await admin.set_recorder(actors.dave.address, False)
    call = clients_for(conn, actors.dave).agents.record_receipt(actors.bob.address, 1, 1, b"\x01" * 32)
    await expect_revert("NotRecorder", call)
