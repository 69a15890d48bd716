"""AgentRegistry on anvil: identities, a recorder set fixed at deployment, receipt-backed reputation."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.chain import AgentRegistryClient, ChainConnection, LocalChain, Reputation
from marketplace.chain.agent_registry import UnexpectedRecorders
from marketplace.chain.deploy import RECORDERS
from marketplace.chain.node import rpc_call
from tests.contracts.conftest import Actors, clients_for, expect_revert
from tests.contracts.test_deploy import SETTLEMENT, _artifact

pytestmark = pytest.mark.chain

ZERO = "0x" + "00" * 20


async def _fresh_registry(conn: ChainConnection, owner: str) -> AgentRegistryClient:
    """A new, unfrozen AgentRegistry owned by `owner`, seen through conn's signer."""
    artifact = _artifact("AgentRegistry")
    factory = conn.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["deploymentBytecode"]["bytecode"])
    account = conn.account.address
    tx = await factory.constructor(owner).build_transaction(
        {"from": account, "nonce": await conn.w3.eth.get_transaction_count(account)}
    )
    sent = await conn.w3.eth.send_raw_transaction(conn.account.sign_transaction(tx).raw_transaction)
    receipt = await conn.w3.eth.wait_for_transaction_receipt(sent)
    conn.reset_nonce()  # sent past the connection's nonce tracking
    client = AgentRegistryClient(conn)
    client.contract = conn.w3.eth.contract(address=receipt["contractAddress"], abi=client.contract.abi)
    return client


async def _record_as(chain: LocalChain, registry: AgentRegistryClient, recorder: str, *receipt: Any) -> None:
    """Send recordReceipt(*receipt) from a contract's own address (anvil impersonation); reverts are ContractRevert."""
    fn = registry.contract.functions.recordReceipt(*receipt)
    try:
        await fn.call({"from": recorder})
    except Exception as exc:
        raise registry.conn.decode_revert(exc) from exc
    rpc_call(chain.rpc_url, "anvil_impersonateAccount", [recorder])
    rpc_call(chain.rpc_url, "anvil_setBalance", [recorder, hex(10**18)])
    try:
        tx = await fn.transact({"from": recorder})
        assert (await registry.conn.w3.eth.wait_for_transaction_receipt(tx))["status"] == 1
    finally:
        rpc_call(chain.rpc_url, "anvil_stopImpersonatingAccount", [recorder])


async def test_deploy_freezesEscrowAndChannelsAsTheOnlyRecorders(chain: LocalChain, conn: ChainConnection) -> None:
    agents = clients_for(conn, chain.treasury).agents
    settlements = [chain.deployment.address(name) for name in RECORDERS]
    assert RECORDERS == ("JobEscrow", "PaymentChannels")
    assert await agents.recorders() == settlements
    assert await agents.recorders_frozen()
    assert all([await agents.is_recorder(a) for a in settlements])
    assert not await agents.is_recorder(chain.treasury.address)
    assert await conn.call(agents.contract.functions.owner()) == ZERO  # ownership given up at freezing
    await agents.require_recorders(settlements)
    with pytest.raises(UnexpectedRecorders, match="expected"):
        await agents.require_recorders(settlements[:1])


async def test_recordReceipt_revertsForArbitraryCaller(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.carol).agents.record_receipt(actors.bob.address, 100, 10**18, b"\x01" * 32)
    error = await expect_revert("NotRecorder", call)
    assert error.args_values == (actors.carol.address,)
    assert await clients_for(conn, actors.carol).agents.reputation(actors.bob.address) == Reputation(0, 0, 0)


async def test_recordReceipt_aggregatesVolumeWeightedScore(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    agents = clients_for(conn, actors.carol).agents
    channels = chain.deployment.address("PaymentChannels")
    await _record_as(chain, agents, channels, actors.bob.address, 100, 300, b"\x01" * 32)
    await _record_as(chain, agents, channels, actors.bob.address, 0, 100, b"\x02" * 32)
    assert await agents.reputation(actors.bob.address) == Reputation(2, 400, 7_500)


async def test_recordReceipt_revertsOnScoreAbove100(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    agents = clients_for(conn, actors.carol).agents
    call = _record_as(chain, agents, chain.deployment.address("JobEscrow"), actors.bob.address, 101, 1, b"\x01" * 32)
    await expect_revert("ScoreOutOfRange", call)


async def test_addRecorder_revertsOnceFrozen_evenForTheDeployer(chain: LocalChain, conn: ChainConnection) -> None:
    agents = clients_for(conn, chain.treasury).agents
    await expect_revert("RecordersAlreadyFrozen", agents.add_recorder(chain.deployment.address("AdCampaigns")))
    await expect_revert("RecordersAlreadyFrozen", agents.freeze_recorders())


async def test_proposedRecorder_cannotRecordUntilFrozen(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    registry = await _fresh_registry(conn, chain.treasury.address)
    escrow = chain.deployment.address("JobEscrow")
    await registry.add_recorder(escrow)
    assert (await registry.recorders(), await registry.is_recorder(escrow)) == ([escrow], False)
    error = await expect_revert(
        "NotRecorder", _record_as(chain, registry, escrow, actors.bob.address, 100, 5, b"\x01" * 32)
    )
    assert error.args_values == (escrow,)

    assert await registry.freeze_recorders() == [escrow]
    await _record_as(chain, registry, escrow, actors.bob.address, 100, 5, b"\x01" * 32)
    assert await registry.reputation(actors.bob.address) == Reputation(1, 5, 10_000)


async def test_freezeRecorders_renouncesOwnership(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    registry = await _fresh_registry(conn, chain.treasury.address)
    await registry.add_recorder(chain.deployment.address("PaymentChannels"))
    await registry.freeze_recorders()
    assert await registry.recorders_frozen()
    assert await conn.call(registry.contract.functions.owner()) == ZERO
    transfer = conn.send(registry.contract.functions.transferOwnership(actors.carol.address))
    await expect_revert("OwnableUnauthorizedAccount", transfer)


async def test_addRecorder_refusesNonOwnerAccountsDuplicatesAndOverflow(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    registry = await _fresh_registry(conn, chain.treasury.address)
    stranger = AgentRegistryClient(conn.with_account(actors.carol))
    stranger.contract = registry.contract
    error = await expect_revert(
        "OwnableUnauthorizedAccount", stranger.add_recorder(chain.deployment.address("JobEscrow"))
    )
    assert error.args_values == (actors.carol.address,)
    await expect_revert("OwnableUnauthorizedAccount", stranger.freeze_recorders())
    await expect_revert("ZeroAddress", registry.add_recorder(ZERO))
    error = await expect_revert("RecorderNotContract", registry.add_recorder(actors.dave.address))
    assert error.args_values == (actors.dave.address,)
    await expect_revert("NoRecorders", registry.freeze_recorders())
    contracts = [chain.deployment.address(name) for name in SETTLEMENT]
    for address in contracts[:8]:
        await registry.add_recorder(address)
    await expect_revert("RecorderAlreadyAdded", registry.add_recorder(contracts[0]))
    await expect_revert("TooManyRecorders", registry.add_recorder(contracts[8]))
    assert await registry.recorders() == contracts[:8]
