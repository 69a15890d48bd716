"""The deploy plan: the whole set in the manifest, wired; constructor guards; bounded validator set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketplace.chain import ChainConnection, LocalChain, StakingClient
from marketplace.chain.deploy import DEPLOY_PLAN, STAKING_CONFIG
from marketplace.chain.node import rpc_call
from marketplace.paths import project_root
from tests.contracts.conftest import Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain

SETTLEMENT = ("AgoraToken", "AgentRegistry", "ModelRegistry", "ValidatorStaking", "JobEscrow", "PaymentChannels")
ZERO = "0x" + "00" * 20


def _artifact(name: str) -> dict[str, Any]:
    """ABI and creation bytecode from Ape's build output (compiled by the session's deploy)."""
    built = json.loads((project_root() / ".build" / "__local__.json").read_text())
    contract: dict[str, Any] = built["contractTypes"][name]
    return contract


async def _deploy_raw(conn: ChainConnection, name: str, *args: Any) -> None:
    artifact = _artifact(name)
    factory = conn.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["deploymentBytecode"]["bytecode"])
    await conn.send(factory.constructor(*args))  # type: ignore[arg-type]


def test_deploy_recordsWholeSetInManifest(chain: LocalChain) -> None:
    assert [name for name, _ in DEPLOY_PLAN] == list(SETTLEMENT)
    assert list(chain.deployment.contracts) == list(SETTLEMENT)
    assert all(chain.deployment.abi(name) for name in SETTLEMENT)


async def test_deploy_wiresContractsTogether(chain: LocalChain, conn: ChainConnection) -> None:
    address = chain.deployment.address
    escrow = conn.contract("JobEscrow").functions
    channels = conn.contract("PaymentChannels").functions
    staking = conn.contract("ValidatorStaking").functions
    assert await conn.call(escrow.token()) == address("AgoraToken")
    assert await conn.call(escrow.models()) == address("ModelRegistry")
    assert await conn.call(escrow.agents()) == address("AgentRegistry")
    assert await conn.call(escrow.staking()) == address("ValidatorStaking")
    assert await conn.call(channels.models()) == address("ModelRegistry")
    assert await conn.call(staking.treasury()) == chain.deployment.treasury
    assert await conn.call(staking.unbondingPeriod()) == STAKING_CONFIG.unbonding_period


async def test_constructor_revertsOnDisputeWindowNotShorterThanUnbonding(
    chain: LocalChain, conn: ChainConnection
) -> None:
    config = (1, 100, 100, 1_000, 2_000)
    call = _deploy_raw(conn, "ValidatorStaking", chain.deployment.address("AgoraToken"), conn.address, config)
    await expect_revert("InvalidConfig", call)


async def test_constructor_revertsOnZeroMinStake(chain: LocalChain, conn: ChainConnection) -> None:
    config = (0, 100, 10, 1_000, 2_000)
    call = _deploy_raw(conn, "ValidatorStaking", chain.deployment.address("AgoraToken"), conn.address, config)
    await expect_revert("InvalidConfig", call)


async def test_constructor_revertsOnZeroDependency(chain: LocalChain, conn: ChainConnection) -> None:
    address = chain.deployment.address
    call = _deploy_raw(conn, "JobEscrow", address("AgoraToken"), ZERO, address("AgentRegistry"), ZERO)
    await expect_revert("ZeroAddress", call)


async def test_stake_revertsWhenValidatorSetFull(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    # Fill the set by writing the length of `_validators` (storage slot 0) instead of sending
    # 256 stake transactions; the contract reads the same storage either way.
    staking = chain.deployment.address("ValidatorStaking")
    rpc_call(chain.rpc_url, "anvil_setStorageAt", [staking, "0x0", "0x" + (256).to_bytes(32, "big").hex()])
    assert len(await StakingClient(conn).validators()) == 256
    await expect_revert("TooManyValidators", clients_for(conn, actors.carol).staking.stake(1))
    # Accounts already in the set may still add stake.
    await clients_for(conn, actors.val1).staking.stake(1)
