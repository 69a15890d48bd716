"""The deploy plan: the whole set in the manifest, wired; constructor guards; bounded validator set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketplace.chain import ChainConnection, LocalChain, StakingClient
from marketplace.chain.deploy import CHANNELS_CONFIG, DEPLOY_PLAN, ESCROW_CONFIG, FEDERATED_CONFIG, STAKING_CONFIG
from marketplace.chain.node import rpc_call
from marketplace.paths import project_root
from tests.contracts.conftest import Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain

SETTLEMENT = (
    "AgoraToken",
    "AgentRegistry",
    "ModelRegistry",
    "ValidatorStaking",
    "JobEscrow",
    "PaymentChannels",
    "FederatedRewards",
    "Groth16Verifier",
    "AdCampaigns",
)
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
    federated = conn.contract("FederatedRewards").functions
    assert await conn.call(escrow.token()) == address("AgoraToken")
    assert await conn.call(escrow.models()) == address("ModelRegistry")
    assert await conn.call(escrow.agents()) == address("AgentRegistry")
    assert await conn.call(escrow.staking()) == address("ValidatorStaking")
    assert await conn.call(channels.models()) == address("ModelRegistry")
    assert await conn.call(staking.treasury()) == chain.deployment.treasury
    assert await conn.call(staking.unbondingPeriod()) == STAKING_CONFIG.unbonding_period
    assert await conn.call(staking.attestationWindow()) == STAKING_CONFIG.attestation_window
    assert await conn.call(staking.committeeSize()) == STAKING_CONFIG.committee_size
    assert await conn.call(channels.minChannelDuration()) == CHANNELS_CONFIG.min_channel_duration
    assert await conn.call(escrow.evaluationWindow()) == ESCROW_CONFIG.evaluation_window
    assert await conn.call(federated.token()) == address("AgoraToken")
    assert await conn.call(federated.staking()) == address("ValidatorStaking")
    assert await conn.call(federated.minClaimWindow()) == FEDERATED_CONFIG.min_claim_window


def _staking_config(**changes: int) -> tuple[int, ...]:
    """A valid ValidatorStaking Config tuple with some fields changed."""
    fields = {
        "min_stake": 1,
        "unbonding": 100,
        "attestation": 10,
        "dispute": 10,
        "slash": 1_000,
        "treasury": 2_000,
        "committee": 3,
    }
    fields.update(changes)
    return tuple(fields.values())


async def _deploy_staking(chain: LocalChain, conn: ChainConnection, config: tuple[int, ...]) -> None:
    await _deploy_raw(conn, "ValidatorStaking", chain.deployment.address("AgoraToken"), conn.address, config)


async def test_constructor_acceptsValidStakingConfig(chain: LocalChain, conn: ChainConnection) -> None:
    artifact = _artifact("ValidatorStaking")
    factory = conn.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["deploymentBytecode"]["bytecode"])
    deploy = factory.constructor(chain.deployment.address("AgoraToken"), conn.address, _staking_config())
    assert await deploy.estimate_gas({"from": conn.address}) > 0  # would revert on an invalid config


@pytest.mark.parametrize(
    "changes",
    [
        {"attestation": 50, "dispute": 50},  # the windows together are not shorter than unbonding
        {"attestation": 0},
        {"dispute": 0},
        {"min_stake": 0},
        {"committee": 0},
        {"committee": 16},  # above MAX_COMMITTEE_SIZE
        {"slash": 10_001},
    ],
)
async def test_constructor_revertsOnInvalidStakingConfig(
    chain: LocalChain, conn: ChainConnection, changes: dict[str, int]
) -> None:
    await expect_revert("InvalidConfig", _deploy_staking(chain, conn, _staking_config(**changes)))


async def test_constructor_revertsOnZeroDependency(chain: LocalChain, conn: ChainConnection) -> None:
    address = chain.deployment.address
    call = _deploy_raw(conn, "JobEscrow", address("AgoraToken"), ZERO, address("AgentRegistry"), ZERO, 60)
    await expect_revert("ZeroAddress", call)


async def test_constructor_revertsOnZeroEvaluationWindow(chain: LocalChain, conn: ChainConnection) -> None:
    address = chain.deployment.address
    args = (address("AgoraToken"), address("ModelRegistry"), address("AgentRegistry"), address("ValidatorStaking"))
    await expect_revert("ZeroEvaluationWindow", _deploy_raw(conn, "JobEscrow", *args, 0))


async def test_constructor_revertsOnZeroFederatedDependency(chain: LocalChain, conn: ChainConnection) -> None:
    call = _deploy_raw(conn, "FederatedRewards", chain.deployment.address("AgoraToken"), ZERO, 3_600)
    await expect_revert("ZeroAddress", call)


@pytest.mark.parametrize("window", [0, 365 * 24 * 3600 + 1])
async def test_constructor_revertsOnInvalidMinClaimWindow(
    chain: LocalChain, conn: ChainConnection, window: int
) -> None:
    address = chain.deployment.address
    call = _deploy_raw(conn, "FederatedRewards", address("AgoraToken"), address("ValidatorStaking"), window)
    error = await expect_revert("InvalidClaimWindow", call)
    assert error.args_values == (window,)


async def test_stake_revertsWhenValidatorSetFull(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    # Fill the set by writing the length of `_validators` (storage slot 0) instead of sending
    # 256 stake transactions; the contract reads the same storage either way.
    staking = chain.deployment.address("ValidatorStaking")
    rpc_call(chain.rpc_url, "anvil_setStorageAt", [staking, "0x0", "0x" + (256).to_bytes(32, "big").hex()])
    assert len(await StakingClient(conn).validators()) == 256
    carol = clients_for(conn, actors.carol)
    await expect_revert("TooManyValidators", carol.staking.stake(STAKING_CONFIG.min_stake))
    # A stake below the minimum is never listed, so a full set does not refuse it.
    await carol.staking.stake(1)
    # Accounts already in the set may still add stake.
    await clients_for(conn, actors.val1).staking.stake(1)
