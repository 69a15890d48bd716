"""The training client's LangChain tools on the real contracts, with a seller that fine-tunes and a staked validator
that grades: a scripted fake chat model funds, delivers and follows a fine-tune within its user's mandate; a price
the mandate does not allow is refused before any escrow transaction (the escrow path no longer bypasses the
mandate); malformed or out-of-range arguments get a typed error and change nothing on chain or in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.escrow import EscrowClient
from agents.capabilities.kit import compose
from agents.capabilities.mandate import Mandate, MandateGuard
from agents.capabilities.negotiation import NegotiationBuyer
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import BUILD_MODELS, BuildModels, ModelOffer
from agents.settlement import Settlement
from agents.testing.doubles import Probe
from agents.tools import RoleToolkit, toolkit_for
from agents.tools.driver import drive
from marketplace.chain import EscrowClient as EscrowContract
from marketplace.chain import JobStatus, TokenClient
from marketplace.registry.resolver import RegistryResolver
from tests.llm.mandates import terms
from tests.llm.test_tools import _call, _model, _tool_results
from tests.roles.world import AGT, FLOOR, PRICE, World

pytestmark = pytest.mark.chain

BASE = ModelOffer(id="rec-base", kind="recommender", price_per_call=PRICE, reserve_price=FLOOR)
ASK, RESERVE = 50 * AGT, 30 * AGT
FUNDING = 100 * AGT
TRAINING_MANDATE: dict[str, Any] = {
    "total_budget": 60 * AGT, "per_call_cap": 60 * AGT, "per_counterparty_cap": 60 * AGT,
    "allowed_models": ("rec-base",), "allowed_kinds": ("training",),
}  # fmt: skip
FUND = {"seller": "seller", "base_model_id": "rec-base", "catalogue": 1, "budget": 60 * AGT, "min_score": 500_000}


@dataclass
class Client:
    """A training client double: negotiation and a mandate-guarded escrow client on a probe with a listed card."""

    probe: Probe
    settlement: Settlement
    escrow: EscrowClient
    guard: MandateGuard
    toolkit: RoleToolkit


async def _market(economy: World) -> AgoraAgent:
    """A seller fine-tuning its recommender (asks ASK, takes RESERVE) and a staked validator, cards published."""
    seller = await economy.role(seller_role, "seller", training_price=ASK, training_floor=RESERVE)
    await economy.call(seller, BUILD_MODELS, BuildModels(models=[BASE], world_seed=7))
    validator = await economy.role(validator_role, "validator")
    await economy.stake(validator)
    for agent in (seller, validator):
        await economy.call(agent, PUBLISH_CARD)
    return seller


async def _client(economy: World, **mandate: Any) -> Client:
    resolver = RegistryResolver(economy.registry_url)  # to fetch the trained weights from the seller
    probe = Probe.create(economy.workdir / "trainer", AgentDeps(resolver=resolver), name="trainer")

    async def close(_: Any) -> None:
        await resolver.close()

    probe.on_event("shutdown")(close)
    settlement = economy.settlement(probe.keys)
    account = settlement.conn.account
    guard = MandateGuard.for_agent(probe, settlement, Mandate.sign(terms(account, **mandate), account))
    escrow = EscrowClient(probe, settlement, NegotiationBuyer(probe), seed=11, guard=guard)
    compose(probe, escrow.negotiation, escrow)
    await economy.fund(settlement.account, FUNDING)
    await probe.start()
    economy.started.append(probe)
    await economy.list_card(probe)  # the evaluator fetches the held-out data from its endpoint
    return Client(probe, settlement, escrow, guard, toolkit_for(probe))


async def _run(toolkit: RoleToolkit, name: str, **args: Any) -> str:
    tool = next(t for t in toolkit.tools() if t.name == name)
    return str(await tool.ainvoke(args))


async def test_drive_fakeModelFundsAndFollowsAFineTuneWithinItsMandate(economy: World) -> None:
    seller = await _market(economy)
    client = await _client(economy, **TRAINING_MANDATE)
    token = TokenClient(economy.conn)
    seller_before = await token.balance_of(seller.keys.eth_address)
    next_job = await EscrowContract(economy.conn).job_count() + 1
    model = _model(
        _call("find_trainers", "t1", base_model_id="rec-base"),
        _call("fund_training", "t2", **FUND),
        _call("deliver_training", "t3", escrow_job_id=next_job),
        _call("training_jobs", "t4"),
        _call("check_balance", "t5"),
        AIMessage(content="Fine-tune bought and delivered."),
    )

    result = await drive(model, client.toolkit.tools(), "Buy a fine-tune of rec-base on catalogue 1.")

    assert result.answer == "Fine-tune bought and delivered."
    found, funded, delivered, jobs, balance = _tool_results(result.messages)
    assert found == f"seller fine-tunes rec-base at {ASK} per job"
    ((job_id, job),) = client.escrow.jobs.items()
    assert int(job_id) == next_job
    assert funded.startswith(f"funded escrow job {job_id} with seller for {job.price}")
    assert RESERVE <= job.price <= 60 * AGT
    on_chain = await EscrowContract(economy.conn).get_job(int(job_id))
    assert (on_chain.budget, on_chain.provider) == (job.price, seller.keys.eth_address)
    assert on_chain.status == JobStatus.COMPLETED
    assert delivered.startswith(f"escrow job {job_id}: completed, score ")
    assert delivered.endswith(", weights received")
    assert f"for {job.price}, completed on chain" in jobs
    spent = client.guard.spent()
    assert spent.total == job.price
    assert spent.by_counterparty == {seller.keys.eth_address.lower(): job.price}
    assert f"spent {job.price} of {60 * AGT}" in balance
    assert await token.balance_of(client.settlement.account) == FUNDING - job.price
    assert await token.balance_of(seller.keys.eth_address) > seller_before
    report = client.toolkit.report()
    assert (report.budget, report.spent) == (60 * AGT, job.price)
    assert [(c.tool, c.ok) for c in report.calls] == [
        ("find_trainers", True), ("fund_training", True), ("deliver_training", True), ("training_jobs", True),
        ("check_balance", True),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mandate", "reason"),
    [
        ({**TRAINING_MANDATE, "total_budget": 20 * AGT}, "left of the total budget"),
        ({**TRAINING_MANDATE, "per_call_cap": 20 * AGT}, "exceeds the per-call cap"),
        ({**TRAINING_MANDATE, "allowed_kinds": ("inference",)}, "job kind 'training' is not allowed"),
        ({**TRAINING_MANDATE, "allowed_models": ("clf-test",)}, "model 'rec-base' is not allowed"),
    ],
)
async def test_fundTraining_beyondMandateRefusedBeforeAnyEscrowTransaction(
    economy: World, mandate: dict[str, Any], reason: str
) -> None:
    await _market(economy)
    client = await _client(economy, **mandate)
    escrow = EscrowContract(economy.conn)
    jobs_before = await escrow.job_count()

    result = await _run(client.toolkit, "fund_training", **FUND)

    assert result.startswith("error[mandate_exceeded]: ")
    assert reason in result
    assert await escrow.job_count() == jobs_before
    assert await TokenClient(economy.conn).balance_of(client.settlement.account) == FUNDING
    assert await TokenClient(economy.conn).allowance(client.settlement.account, escrow.address) == 0
    assert client.guard.spent().total == 0
    assert len(client.escrow.jobs) == 0


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"seller": "nobody"}, "not_found"),
        ({"epochs": 0}, "invalid_arguments"),
        ({"ttl": 5}, "invalid_arguments"),
        ({"budget": -1}, "invalid_arguments"),
        ({"min_score": 2_000_000}, "invalid_arguments"),
        ({"pay_to": "0x000000000000000000000000000000000000dEaD"}, "invalid_arguments"),
    ],
)
async def test_fundTraining_malformedOrOutOfRangeTypedErrorNothingChanged(
    economy: World, changes: dict[str, Any], code: str
) -> None:
    await _market(economy)
    client = await _client(economy, **TRAINING_MANDATE)
    block = await economy.conn.w3.eth.block_number

    result = await _run(client.toolkit, "fund_training", **{**FUND, **changes})

    assert result.startswith(f"error[{code}]: ")
    assert "\n" not in result
    assert await economy.conn.w3.eth.block_number == block
    assert client.guard.spent().total == 0
    assert len(client.escrow.jobs) == 0
    assert len(client.escrow.negotiation.agreements) == 0
    assert [(c.tool, c.ok) for c in client.toolkit.transcript.entries()] == [("fund_training", False)]


async def test_deliverAndReclaim_unknownJobRefusedNothingToReclaim(economy: World) -> None:
    await _market(economy)
    client = await _client(economy, **TRAINING_MANDATE)

    unknown = await _run(client.toolkit, "deliver_training", escrow_job_id=99)
    nothing = await _run(client.toolkit, "reclaim_expired_training")
    jobs = await _run(client.toolkit, "training_jobs")

    assert unknown == "error[not_found]: escrow job 99 was not funded by this agent"
    assert nothing == "nothing to reclaim"
    assert jobs == "no training jobs"
