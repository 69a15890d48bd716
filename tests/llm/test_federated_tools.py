"""Federated tools on real roles and contracts after a real federated round (secure aggregation, DP-SGD): a scripted
fake chat model follows a user's jobs and privacy budget, claims its reward on chain, and cannot opt back in once
its privacy budget is spent; the sponsor's view of the job, and its refund of what nobody earned after the claim
window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agents.base import AgoraAgent
from agents.capabilities.federated.client import ClientOptions, FederatedClient
from agents.capabilities.federated.plan import participation
from agents.capabilities.federated.sponsor import Sponsorship
from agents.capabilities.kit import composed
from agents.offload import configure_offload
from agents.roles import seller as seller_role
from agents.roles import user as user_role
from agents.roles import validator as validator_role
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import SPONSOR_FEDERATED, Sponsor
from agents.roles.validator import RUN_FEDERATED, JobId
from agents.tools import RoleToolkit, toolkit_for
from agents.tools.driver import drive
from marketplace.chain import TokenClient
from marketplace.chain.federated import FederatedRewardsClient
from marketplace.ml.federated.privacy import PrivacyAccountant
from protocols.federated import FederatedPlan
from tests.llm.test_tools import _call, _model, _tool_results
from tests.roles.world import AGT, World

pytestmark = pytest.mark.chain

REWARD = 4 * AGT
PLAN = FederatedPlan(
    model_id="rec-fl", model_hash="", rounds=1, clients_per_round=3, min_participants=3, clip_norm=1.0,
    noise_multiplier=1.0, delta=1e-5, local_steps=4, batch_size=32, lr=1.0, update_clip=2.0,
    reward_per_round=REWARD, max_samples=64,
)  # fmt: skip
TTL, CLAIM_WINDOW = 3_600, 86_400
ONE_ROUND = PrivacyAccountant().epsilon_of([participation(PLAN, 1, 1, 64)])
"""The ε one round of the plan costs a user holding 64 events: user-0's whole budget."""


@pytest.fixture(autouse=True)
def _inline_offload() -> Iterator[None]:
    configure_offload("inline")
    yield
    configure_offload()


async def _round(economy: World) -> tuple[AgoraAgent, list[AgoraAgent], int, dict[str, int]]:
    """A sponsor, a staked aggregator and three users run one round; (sponsor, users, job id, rewards)."""
    sponsor = await economy.role(seller_role, "sponsor", tokens=10 * REWARD)
    aggregator = await economy.validator(validator_role)
    users = []
    for i in range(3):
        budget = ONE_ROUND if i == 0 else 60.0
        options = ClientOptions(enabled=True, shopper_id=i, events=64, epsilon_budget=budget)
        users.append(await economy.role(user_role, f"user-{i}", federated=options.model_dump(), seed=3))
    for agent in (sponsor, aggregator, *users):
        await economy.call(agent, PUBLISH_CARD)
    sponsorship = Sponsorship(plan=PLAN.dict(), ttl=TTL, claim_window=CLAIM_WINDOW, population=8, seed=3)
    job = await economy.call(sponsor, SPONSOR_FEDERATED, Sponsor(sponsorship=sponsorship, price_per_call=10**16,
                                                                 reserve_price=10**16))  # fmt: skip
    report = await economy.call(aggregator, RUN_FEDERATED, JobId(job_id=job.job_id))
    (done,) = report.rounds
    assert done.completed, done.reason
    return sponsor, users, job.job_id, done.rewards


async def _run(toolkit: RoleToolkit, name: str, **args: Any) -> str:
    tool = next(t for t in toolkit.tools() if t.name == name)
    return str(await tool.ainvoke(args))


async def test_federatedTools_userClaimsItsRewardAndCannotOptInPastItsBudget_sponsorReclaims(economy: World) -> None:
    sponsor, users, job_id, rewards = await _round(economy)
    user = users[0]
    learner = next(c for c in composed(user) if isinstance(c, FederatedClient))
    toolkit = toolkit_for(user)
    assert [t.name for t in toolkit.tools()][-4:] == [
        "take_part_in_federated", "privacy_budget", "federated_jobs", "claim_rewards",
    ]  # fmt: skip
    token = TokenClient(economy.conn)
    reward = rewards[user.keys.eth_address]
    before = await token.balance_of(user.keys.eth_address)
    model = _model(
        _call("federated_jobs", "f1"),
        _call("privacy_budget", "f2"),
        _call("claim_rewards", "f3"),
        _call("claim_rewards", "f4"),
        _call("take_part_in_federated", "f5", take_part=False),
        _call("take_part_in_federated", "f6", take_part=True),
        _call("take_part_in_federated", "f7", take_part="maybe"),
        AIMessage(content="Claimed; my privacy budget is spent."),
    )

    result = await drive(model, toolkit.tools(), "Collect your federated rewards and keep taking part.")

    jobs, privacy, claimed, again, out, refused, malformed = _tool_results(result.messages)
    assert jobs == f"job {job_id} (rec-fl, 1 rounds): trained rounds [1]\nrewards: 0 claimed, {reward} to claim"
    assert privacy.startswith(f"epsilon spent {ONE_ROUND:.2f} of {ONE_ROUND:.2f}")
    assert claimed == f"claimed {reward} for 1 round(s)"
    assert await token.balance_of(user.keys.eth_address) - before == reward
    assert again == "no rewards to claim"
    assert out == "refusing federated invitations from now on"
    assert refused == f"error[privacy_budget]: epsilon budget {ONE_ROUND:.2f} is spent"
    assert malformed.startswith("error[invalid_arguments]: take_part")
    assert learner.options.enabled is False  # the refused opt-in changed nothing
    assert learner.epsilon_spent() == pytest.approx(ONE_ROUND)

    other = toolkit_for(users[1])
    assert (await _run(other, "privacy_budget")).startswith("epsilon spent ")
    assert (await _run(other, "take_part_in_federated", take_part=True)).startswith("accepting federated invitations")

    view = toolkit_for(sponsor)
    rewards_client = FederatedRewardsClient(economy.conn)
    on_chain = await rewards_client.get_job(job_id)
    jobs_view = await _run(view, "sponsored_jobs")
    early = await _run(view, "reclaim_federated_budget")
    economy.chain.increase_time(TTL + CLAIM_WINDOW + 1)
    sponsor_before = await token.balance_of(sponsor.keys.eth_address)
    reclaimed = await _run(view, "reclaim_federated_budget")

    assert jobs_view.startswith(f"job {job_id}: model rec-fl-v0, latest version rec-fl-v1; budget {REWARD}, ")
    assert f"{on_chain.posted} earned by users, {reward} claimed, 0 refunded" in jobs_view
    assert early.startswith("nothing to reclaim")
    unpaid = REWARD - reward  # the other users never claimed
    assert reclaimed == f"reclaimed {unpaid} from 1 job(s)"
    assert await token.balance_of(sponsor.keys.eth_address) - sponsor_before == unpaid
    assert (await rewards_client.get_job(job_id)).escrowed == 0
