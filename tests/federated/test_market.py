"""The federated market on real agents and contracts: a sponsoring seller, an aggregating validator, users.

What leaves a user during a round, dropouts down to the threshold and one past it, the privacy budget across a
restart, rewards claimed on chain, versions registered with their contributors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from agents.base import AgoraAgent, _AgoraContext
from agents.capabilities.control import Empty
from agents.capabilities.federated import client as client_module
from agents.capabilities.federated.client import ClientOptions
from agents.capabilities.federated.plan import QUANTISATION, participation
from agents.capabilities.federated.sponsor import Sponsorship
from agents.crypto import schema_digest
from agents.offload import configure_offload
from agents.roles import seller as seller_role
from agents.roles import user as user_role
from agents.roles import validator as validator_role
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import REFUND_FEDERATED, SPONSOR_FEDERATED, Sponsor
from agents.roles.user import CLAIM_REWARDS, PRIVACY_SPENT
from agents.roles.validator import RUN_FEDERATED, JobId
from marketplace.chain import ModelRegistryClient, TokenClient
from marketplace.chain.federated import FederatedRewardsClient
from marketplace.ml import RecommenderSpec
from marketplace.ml.federated.privacy import PrivacyAccountant
from marketplace.ml.federated.secagg import quantise
from marketplace.ml.federated.shopping import user_history
from protocols.federated import FederatedJoin, FederatedPlan, MaskedUpdate, RoundKeys, RoundShares, UnmaskShares
from tests.attacks.agent_world import chain, economy
from tests.roles.world import AGT, World

pytestmark = pytest.mark.chain

REWARD = 4 * AGT
PLAN = FederatedPlan(
    model_id="rec-fl", model_hash="", rounds=1, clients_per_round=5, min_participants=3, clip_norm=1.0,
    noise_multiplier=1.0, delta=1e-5, local_steps=4, batch_size=32, lr=1.0, update_clip=2.0,
    reward_per_round=REWARD, max_samples=64,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _inline_offload() -> Iterator[None]:
    """Training runs in the test's process, so what it computes can be observed."""
    configure_offload("inline")
    yield
    configure_offload()


async def _market(economy: World, users: int, **user_options: Any) -> tuple[AgoraAgent, AgoraAgent, list[AgoraAgent]]:
    """A sponsoring seller, a staked aggregator, and `users` users taking part (cards published)."""
    sponsor = await economy.role(seller_role, "sponsor", tokens=10 * REWARD)
    aggregator = await economy.role(validator_role, "aggregator")
    await economy.stake(aggregator)
    members = []
    for i in range(users):
        options = ClientOptions(enabled=True, shopper_id=i, events=64, **user_options.get(f"user-{i}", {}))
        members.append(await economy.role(user_role, f"user-{i}", federated=options.model_dump(), seed=3))
    for agent in (sponsor, aggregator, *members):
        await economy.call(agent, PUBLISH_CARD)
    return sponsor, aggregator, members


async def _run(economy: World, sponsor: AgoraAgent, aggregator: AgoraAgent, plan: FederatedPlan = PLAN) -> Any:
    sponsorship = Sponsorship(plan=plan.dict(), ttl=3_600, claim_window=86_400, population=8, world_seed=0, seed=3)
    job = await economy.call(sponsor, SPONSOR_FEDERATED, Sponsor(sponsorship=sponsorship, price_per_call=10**16,
                                                                 reserve_price=10**16))  # fmt: skip
    assert job.aggregator == aggregator.address
    return job, await economy.call(aggregator, RUN_FEDERATED, JobId(job_id=job.job_id))


async def test_round_pays_survivors_and_registers_a_version_with_its_contributors(economy: World) -> None:
    sponsor, aggregator, users = await _market(economy, 4)
    job, report = await _run(economy, sponsor, aggregator)

    (done,) = report.rounds
    assert done.completed, done.reason
    assert (done.survivors, done.dropped) == (4, 0)
    assert sum(done.rewards.values()) <= REWARD
    assert set(done.rewards) == {u.keys.eth_address for u in users}
    token = TokenClient(economy.conn)
    for agent in users:
        before = await token.balance_of(agent.keys.eth_address)
        claimed = (await economy.call(agent, CLAIM_REWARDS, Empty())).amounts
        assert claimed == [done.rewards[agent.keys.eth_address]]
        assert await token.balance_of(agent.keys.eth_address) - before == claimed[0]
        assert (await economy.call(agent, CLAIM_REWARDS, Empty())).amounts == []  # each leaf once
    # The sponsor registered version 1 as a child of version 0, with the round's users as contributors.
    registry = ModelRegistryClient(economy.conn)
    listed = {await registry.token_uri(i): i for i in range(1, await registry.model_count() + 1)}
    v0, v1 = listed["agora://model/recommender/rec-fl-v0"], listed["agora://model/recommender/rec-fl-v1"]
    lineage = await registry.lineage_of(v1)
    assert [p for p, _ in lineage.parents] == [v0]
    assert {c.lower() for c, _ in lineage.contributors} == {u.keys.eth_address.lower() for u in users}
    # Nothing to refund before the claim window closes; what was not paid comes back after it.
    assert (await economy.call(sponsor, REFUND_FEDERATED, Empty())).amounts == []
    economy.chain.increase_time(3_600 + 86_400 + 1)
    refunded = (await economy.call(sponsor, REFUND_FEDERATED, Empty())).amounts
    assert sum(refunded) == PLAN.rounds * REWARD - sum(done.rewards.values())
    assert (await FederatedRewardsClient(economy.conn).get_job(job.job_id)).escrowed == 0


async def test_users_send_only_masked_updates(economy: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message a user agent sends during the job is recorded: none carries its events, and the only data it
    grants is its masked update, uncorrelated with the true update."""
    sponsor, aggregator, users = await _market(economy, 3)
    mine = {u.address for u in users}
    sent: list[tuple[str, str]] = []
    original = _AgoraContext.send_raw

    async def record(self: _AgoraContext, destination: str, digest: str, body: str, **kw: Any) -> Any:
        if self._agora_agent.address in mine:
            sent.append((digest, body))
        return await original(self, destination, digest, body, **kw)

    monkeypatch.setattr(_AgoraContext, "send_raw", record)
    updates: list[np.ndarray[Any, Any]] = []
    real = client_module.train_locally

    def spy(*args: Any) -> Any:
        update = real(*args)
        updates.append(update)
        return update

    monkeypatch.setattr(client_module, "train_locally", spy)
    _, report = await _run(economy, sponsor, aggregator)
    assert report.rounds[0].completed

    allowed = {schema_digest(m): m for m in (FederatedJoin, RoundKeys, RoundShares, MaskedUpdate, UnmaskShares)}
    assert {digest for digest, _ in sent} == set(allowed)  # nothing else left any user
    spec = RecommenderSpec()
    for i in range(3):
        history = user_history(spec, i, 64, seed=3)
        events = json.dumps([[int(a), int(b)] for a, b in zip(history.item_ids.tolist(), history.labels.tolist(),
                                                              strict=True)])  # fmt: skip
        assert all(events[1:-1] not in body for _, body in sent)
    masked = [MaskedUpdate.parse_raw(body) for digest, body in sent if allowed[digest] is MaskedUpdate]
    assert len(masked) == len(updates) == 3
    truths = [quantise(u, QUANTISATION).view(np.int32).astype(float) for u in updates]
    for message in masked:
        owner = next(u for u in users if u.address == message.update.owner)
        vector = np.frombuffer(owner.blobs.get(message.update.blob_id), dtype="<u4").view(np.int32).astype(float)
        # For independent vectors the sample correlation is about normal with sd 1/sqrt(n): six sd is never reached by
        # chance, while an unmasked or weakly masked update correlates near 1.
        bound = 6 / np.sqrt(vector.size)
        assert max(abs(np.corrcoef(vector, truth)[0, 1]) for truth in truths) < bound


async def test_dropouts_down_to_the_threshold_are_survived(economy: World) -> None:
    """Five users, threshold three: two leave after sharing their keys and the sum of the other three is used."""
    drops = {f"user-{i}": {"drop_rounds": [1]} for i in (0, 1)}
    sponsor, aggregator, _ = await _market(economy, 5, **drops)
    _, report = await _run(economy, sponsor, aggregator)
    (done,) = report.rounds
    assert done.completed, done.reason
    assert (done.survivors, done.dropped) == (3, 2)
    assert len(done.rewards) == 3


async def test_one_dropout_past_the_threshold_aborts_without_payout_or_model(economy: World) -> None:
    drops = {f"user-{i}": {"drop_rounds": [1]} for i in (0, 1, 2)}
    sponsor, aggregator, users = await _market(economy, 5, **drops)
    job, report = await _run(economy, sponsor, aggregator)
    (aborted,) = report.rounds
    assert not aborted.completed
    assert "needed" in aborted.reason or "threshold" in aborted.reason, aborted.reason
    assert aborted.rewards == {}
    assert (await FederatedRewardsClient(economy.conn).get_round(job.job_id, 1)).root == bytes(32)
    registry = ModelRegistryClient(economy.conn)
    uris = [await registry.token_uri(i) for i in range(1, await registry.model_count() + 1)]
    assert "agora://model/recommender/rec-fl-v1" not in uris
    for agent in users:
        assert (await economy.call(agent, CLAIM_REWARDS, Empty())).amounts == []


async def test_privacy_budget_refusal_survives_a_restart(economy: World) -> None:
    """A user whose budget covers one round of the plan trains once, then refuses, also after a restart."""
    one_round = PrivacyAccountant().epsilon_of([participation(PLAN, 1, 1, 64)])
    budget = {"user-0": {"epsilon_budget": one_round * 1.05}}
    sponsor, aggregator, users = await _market(economy, 4, **budget)
    _, first = await _run(economy, sponsor, aggregator)
    assert users[0].keys.eth_address in first.rounds[0].rewards
    spent = (await economy.call(users[0], PRIVACY_SPENT, Empty())).epsilon
    assert spent == pytest.approx(one_round)

    await economy.stop(users[0])
    restarted = await economy.role(user_role, "user-0", federated=ClientOptions(
        enabled=True, shopper_id=0, events=64, epsilon_budget=one_round * 1.05).model_dump(), seed=3)  # fmt: skip
    await economy.call(restarted, PUBLISH_CARD)  # its new endpoint
    assert (await economy.call(restarted, PRIVACY_SPENT, Empty())).epsilon == pytest.approx(spent)
    _, second = await _run(economy, sponsor, aggregator, PLAN.copy(update={"model_id": "rec-fl2"}))
    assert any("privacy budget" in why for why in second.refused.values()), second.refused
    assert restarted.keys.eth_address not in second.joined


async def test_restarted_aggregator_resumes_instead_of_rerunning_rounds(economy: World) -> None:
    """Rounds already run (rewards posted, version registered) are not run again after a restart."""
    sponsor, aggregator, _ = await _market(economy, 3)
    job, first = await _run(economy, sponsor, aggregator)
    registry = ModelRegistryClient(economy.conn)
    models = await registry.model_count()
    await economy.stop(aggregator)
    again = await economy.role(validator_role, "aggregator")
    await economy.call(again, PUBLISH_CARD)
    resumed = await economy.call(again, RUN_FEDERATED, JobId(job_id=job.job_id))
    assert resumed == first
    assert await registry.model_count() == models
