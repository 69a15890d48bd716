"""The validator's LangChain tools on a real validator role and the real contracts: its stake, unbonding and
withdrawal (refused before any transaction when the chain would refuse), its pending work, and a dispute it opened
against a seller that made up its outputs, followed and resolved by a scripted fake chat model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.tools import RoleToolkit, toolkit_for
from agents.tools.driver import drive
from marketplace.chain import StakingClient, TokenClient
from marketplace.chain.deploy import STAKING_CONFIG
from protocols.validation import Attestation
from tests.llm.test_tools import _call, _model, _tool_results
from tests.roles.world import MIN_STAKE, World

pytestmark = pytest.mark.chain


async def _run(toolkit: RoleToolkit, name: str, **args: Any) -> str:
    tool = next(t for t in toolkit.tools() if t.name == name)
    return str(await tool.ainvoke(args))


async def test_toolkitFor_validatorRoleHasValidatorTools(economy: World) -> None:
    validator = await economy.validator(validator_role)

    toolkit = toolkit_for(validator)

    assert [t.name for t in toolkit.tools()] == [
        "check_stake", "pending_work", "resolve_disputes", "request_unstake", "withdraw_stake",
    ]  # fmt: skip
    assert await _run(toolkit, "pending_work") == (
        "0 call(s) re-executed and attested, 0 found wrong\nevaluations: 0 awaiting a deliverable (none), "
        "0 graded for 0 in fees"
    )
    assert await _run(toolkit, "resolve_disputes") == "no disputes to resolve"


async def test_stakeTools_unbondAndWithdrawOnlyWhenTheChainAllows(economy: World) -> None:
    validator = await economy.validator(validator_role)
    toolkit = toolkit_for(validator)
    staking, token = StakingClient(economy.conn), TokenClient(economy.conn)
    account = validator.keys.eth_address
    half = MIN_STAKE // 2

    stake = await _run(toolkit, "check_stake")
    too_much = await _run(toolkit, "request_unstake", amount=MIN_STAKE + 1)
    nothing = await _run(toolkit, "withdraw_stake")
    assert (await staking.stake_of(account)).active == MIN_STAKE
    unbonding = await _run(toolkit, "request_unstake", amount=half)
    block = await economy.conn.w3.eth.block_number
    early = await _run(toolkit, "withdraw_stake")
    assert await economy.conn.w3.eth.block_number == block  # refused before any transaction
    economy.chain.increase_time(STAKING_CONFIG.unbonding_period + 1)
    before = await token.balance_of(account)
    withdrew = await _run(toolkit, "withdraw_stake")

    assert stake == f"active stake {MIN_STAKE}, unbonding 0; minimum to validate {MIN_STAKE}"
    assert too_much == f"error[out_of_bounds]: {MIN_STAKE + 1} exceeds the active stake of {MIN_STAKE}"
    assert nothing == "error[nothing_unbonding]: no stake is unbonding"
    assert unbonding.startswith(f"unbonding {half}; withdrawable at ")
    assert early.startswith("error[too_early]: unbonding stake is released at ")
    assert withdrew == f"withdrew {half}"
    assert await token.balance_of(account) - before == half
    info = await staking.stake_of(account)
    assert (info.active, info.unbonding) == (MIN_STAKE - half, 0)
    assert [(c.tool, c.ok) for c in toolkit.transcript.entries()] == [
        ("check_stake", True), ("request_unstake", False), ("withdraw_stake", False), ("request_unstake", True),
        ("withdraw_stake", False), ("withdraw_stake", True),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [{"amount": 0}, {"amount": -MIN_STAKE}, {"amount": "everything"}, {}, {"amount": 1, "to": "0x" + "de" * 20}],
)
async def test_requestUnstake_malformedTypedErrorNothingOnChain(economy: World, args: dict[str, Any]) -> None:
    validator = await economy.validator(validator_role)
    toolkit = toolkit_for(validator)
    block = await economy.conn.w3.eth.block_number

    result = await _run(toolkit, "request_unstake", **args)

    assert result.startswith("error[invalid_arguments]: ")
    assert await economy.conn.w3.eth.block_number == block
    info = await StakingClient(economy.conn).stake_of(validator.keys.eth_address)
    assert (info.active, info.unbonding) == (MIN_STAKE, 0)
    assert [(c.tool, c.ok) for c in toolkit.transcript.entries()] == [("request_unstake", False)]


async def test_drive_fakeModelFollowsAndResolvesTheDisputeItsValidatorOpened(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role, dishonest_rate=1.0)  # it attests outputs it made up
    await economy.stake(seller)
    validator = await economy.validator(validator_role)
    call = await economy.attested_call(await economy.buyer("alice"), seller)
    verdict = await call.buyer.probe.ask(validator.address, call.audit(), (Attestation,), wait=30)
    assert isinstance(verdict, Attestation)
    assert not verdict.valid
    staking = StakingClient(economy.conn)
    dispute_id = await staking.challenge_of(call.task, seller.keys.eth_address, validator.keys.eth_address)
    toolkit = toolkit_for(validator)
    model = _model(
        _call("pending_work", "v1"),
        _call("resolve_disputes", "v2"),
        AIMessage(content="The dispute is still open to votes."),
    )

    first = await drive(model, toolkit.tools(), "Check your work and collect what you won.")

    pending, early = _tool_results(first.messages)
    assert f"1 call(s) re-executed and attested, 1 found wrong\ndispute {dispute_id} against " in pending
    assert "voting until" in pending
    assert early.startswith(f"error[too_early]: dispute {dispute_id} takes votes until ")
    assert not (await staking.dispute_of(dispute_id)).resolved

    economy.chain.increase_time(STAKING_CONFIG.dispute_window + 1)
    model = _model(_call("resolve_disputes", "v3"), _call("pending_work", "v4"), AIMessage(content="Resolved."))
    second = await drive(model, toolkit.tools(), "Collect what you won.")

    resolved, after = _tool_results(second.messages)
    dispute = await staking.dispute_of(dispute_id)
    assert dispute.resolved
    assert resolved.startswith(f"dispute {dispute_id}: " + ("accused upheld" if dispute.upheld else "accused lost"))
    assert f"dispute {dispute_id}" not in after
    assert [(c.tool, c.ok) for c in toolkit.report().calls] == [
        ("pending_work", True), ("resolve_disputes", False), ("resolve_disputes", True), ("pending_work", True),
    ]  # fmt: skip
