"""Attacks on the federated market and on data by reference, against real agents and contracts.

An impostor posing as a job's aggregator, an impostor posing as a job's sponsor (to be handed its versions), an
invitation that weakens the plan the chain committed to, round messages from a stranger, a forged model version
sent to the sponsor, and an unstaked account asking a seller for its weights: each is refused before the user
trains, the aggregator takes the job, the sponsor registers, or the seller grants anything.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.control import Empty
from agents.capabilities.federated.aggregator import Assignment
from agents.capabilities.federated.client import ClientOptions
from agents.capabilities.federated.plan import plan_hash
from agents.capabilities.federated.sponsor import Sponsorship
from agents.roles import seller as seller_role
from agents.roles import user as user_role
from agents.roles import validator as validator_role
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import BUILD_MODELS, SPONSOR_FEDERATED, BuildModels, ModelOffer, Sponsor
from agents.roles.user import PRIVACY_SPENT
from agents.roles.validator import RUN_FEDERATED, JobId
from agents.state import Repository
from agents.testing.doubles import Probe
from marketplace.chain.federated import FederatedRewardsClient, FederatedTerms
from protocols.blobs import BlobGrant, BlobRef, GrantRequest, grant_request_text
from protocols.errors import ErrorReply
from protocols.federated import (
    AssignmentAccepted,
    FederatedAssignment,
    FederatedInvite,
    FederatedJoin,
    FederatedPlan,
    NewModelVersion,
    RoundKeys,
    RoundStart,
    VersionRegistered,
    assignment_text,
    invite_text,
)
from tests.attacks.agent_world import chain, economy
from tests.roles.world import AGT, FLOOR, PRICE, World

pytestmark = pytest.mark.chain

PLAN = FederatedPlan(
    model_id="rec-fl", model_hash="", rounds=1, clients_per_round=4, min_participants=3, clip_norm=1.0,
    noise_multiplier=1.0, delta=1e-5, local_steps=2, batch_size=32, lr=1.0, update_clip=2.0,
    reward_per_round=AGT, max_samples=64,
)  # fmt: skip


async def _job(economy: World) -> tuple[AgoraAgent, AgoraAgent, AgoraAgent, int, FederatedPlan]:
    """A sponsor's job handed to a staked aggregator, one user taking part; the job id and the committed plan."""
    sponsor = await economy.role(seller_role, "sponsor", tokens=10 * AGT)
    aggregator = await economy.role(validator_role, "aggregator")
    await economy.stake(aggregator)
    options = ClientOptions(enabled=True, shopper_id=1, events=64).model_dump()
    user = await economy.role(user_role, "user", federated=options, seed=3)
    for agent in (sponsor, aggregator, user):
        await economy.call(agent, PUBLISH_CARD)
    sponsorship = Sponsorship(plan=PLAN.dict(), ttl=3_600, claim_window=86_400, population=8, seed=3)
    job = await economy.call(sponsor, SPONSOR_FEDERATED, Sponsor(sponsorship=sponsorship, price_per_call=PRICE,
                                                                 reserve_price=FLOOR))  # fmt: skip
    version0 = await economy.settlement(sponsor.keys).models.get(job.model_id)
    committed = PLAN.copy(update={"model_hash": version0.content_hash})
    assert plan_hash(committed) == (await FederatedRewardsClient(economy.conn).get_job(job.job_id)).spec_hash
    return sponsor, aggregator, user, job.job_id, committed


def _signed_invite(job_id: int, plan: FederatedPlan, agent_address: str, key: Any) -> FederatedInvite:
    signature = Account.sign_message(encode_defunct(text=invite_text(job_id, agent_address)), key).signature
    return FederatedInvite(job_id=job_id, plan=plan, signature="0x" + signature.hex())


async def test_impostorAggregatorInvitationRefused(economy: World) -> None:
    """A stranger relays a real job's plan signed with its own key: the user does not join it."""
    _, _, user, job_id, plan = await _job(economy)
    impostor = Probe.create(economy.workdir / "impostor", name="impostor")
    await impostor.start()
    economy.started.append(impostor)
    stranger = economy.chain.accounts[5]
    answer = await impostor.ask(user.address, _signed_invite(job_id, plan, impostor.address, stranger.key),
                                (FederatedJoin,))  # fmt: skip
    assert isinstance(answer, ErrorReply)
    assert "aggregator" in answer.detail


async def test_impostorSponsorAssignmentRefused(economy: World) -> None:
    """A stranger hands the aggregator a real, not yet assigned job (so the new versions would be granted to it):
    with its own key, or replaying the sponsor's signature made for the sponsor's agent, it is refused and the
    aggregator keeps nothing of it."""
    sponsor, aggregator, _, _, plan = await _job(economy)
    funds = economy.settlement(sponsor.keys)
    await funds.token.approve(funds.federated.address, AGT)
    terms = FederatedTerms(aggregator.keys.eth_address, AGT, await funds.chain_time() + 3_600, 86_400, plan_hash(plan))
    job_id = (await funds.federated.create_job(terms)).job_id
    impostor = Probe.create(economy.workdir / "impostor-sponsor", name="impostor-sponsor")
    await impostor.start()
    economy.started.append(impostor)
    ref = BlobRef(blob_id=plan.model_hash, size=4, owner=impostor.address, grant=_dummy_grant(impostor))
    stranger = economy.chain.accounts[5]
    for key, signed_for in ((stranger.key, impostor.address), (sponsor.keys.account.key, sponsor.address)):
        signature = Account.sign_message(encode_defunct(text=assignment_text(job_id, signed_for)), key).signature
        assignment = FederatedAssignment(job_id=job_id, plan=plan, model=ref, heldout=ref,
                                         signature="0x" + signature.hex())  # fmt: skip
        answer = await impostor.ask(aggregator.address, assignment, (AssignmentAccepted,))
        assert isinstance(answer, ErrorReply)
        assert answer.code == "unauthorized"
        assert "sponsor" in answer.detail
    assert Repository(aggregator.store, "federated.assignment", Assignment).get(str(job_id)) is None


async def test_invitationWithWeakerPrivacyThanCommittedRefused(economy: World) -> None:
    """The real aggregator's signature on a plan with less noise than the chain committed to: refused."""
    _, aggregator, user, job_id, plan = await _job(economy)
    weaker = plan.copy(update={"noise_multiplier": 0.6})
    key = economy.chain.accounts[0].key  # any key: the plan check comes first
    invite = _signed_invite(job_id, weaker, aggregator.address, key)
    with pytest.raises(RemoteError, match="committed"):
        await aggregator.request(user.address, invite, FederatedJoin)


async def test_roundMessagesFromAStrangerRefused(economy: World) -> None:
    """Only the agent that invited the user may start its rounds (a stranger cannot harvest keys or updates)."""
    _, _, user, job_id, _ = await _job(economy)
    stranger = Probe.create(economy.workdir / "stranger", name="stranger")
    await stranger.start()
    economy.started.append(stranger)
    fake_model = BlobRef(blob_id="0x" + "00" * 32, size=4, owner=stranger.address, grant=_dummy_grant(stranger))
    start = RoundStart(job_id=job_id, round=1, index=1, participants=[1, 2, 3], threshold=2, neighbours=None,
                       model=fake_model)  # fmt: skip
    answer = await stranger.ask(user.address, start, (RoundKeys,))
    assert isinstance(answer, ErrorReply)
    assert "aggregator" in answer.detail


def _dummy_grant(owner: AgoraAgent) -> BlobGrant:
    return BlobGrant(grant_id="00", blob_id="0x" + "00" * 32, size=4, owner=owner.address, peer=owner.address,
                     expires=0, signature="sig1")  # fmt: skip


async def test_forgedModelVersionToSponsorRefused(economy: World) -> None:
    """A stranger offering the sponsor a 'new version' (to get its weights registered with itself as contributor)."""
    sponsor, _, _, job_id, _ = await _job(economy)
    stranger = Probe.create(economy.workdir / "forger", name="forger")
    await stranger.start()
    economy.started.append(stranger)
    blob = stranger.blobs.put(b"not a model")
    version = NewModelVersion(job_id=job_id, round=1, model=stranger.blobs.grant(blob, sponsor.address),
                              contributors=[economy.chain.accounts[6].address], metric=0.99)  # fmt: skip
    answer = await stranger.ask(sponsor.address, version, (VersionRegistered,))
    assert isinstance(answer, ErrorReply)
    assert answer.code == "unauthorized"


async def test_unstakedAccountGetsNoModelWeights(economy: World) -> None:
    """A seller shares its listed weights only with staked accounts: an unstaked one gets no grant."""
    seller = await economy.role(seller_role, "seller")
    offer = ModelOffer(id="rec-x", kind="recommender", price_per_call=PRICE, reserve_price=FLOOR)
    await economy.call(seller, BUILD_MODELS, BuildModels(models=[offer], world_seed=1))
    listed = await (economy.settlement(seller.keys)).models.get("rec-x")
    thief = Probe.create(economy.workdir / "thief", name="thief")
    await thief.start()
    economy.started.append(thief)
    account = economy.chain.accounts[7]  # funded, never staked
    expires = int(time.time()) + 60
    text = grant_request_text(listed.content_hash, thief.address, expires)
    signature = Account.sign_message(encode_defunct(text=text), account.key).signature
    request = GrantRequest(blob_id=listed.content_hash, account=account.address, expires=expires,
                           signature="0x" + signature.hex())  # fmt: skip
    answer = await thief.ask(seller.address, request, (BlobRef,))
    assert isinstance(answer, ErrorReply)
    assert "staked" in answer.detail
    # Naming a staked account it does not control does not help: the signature is checked first.
    staked = await economy.role(validator_role, "staked")
    await economy.stake(staked)
    borrowed = request.copy(update={"account": staked.keys.eth_address})
    answer = await thief.ask(seller.address, borrowed, (BlobRef,))
    assert isinstance(answer, ErrorReply)
    assert answer.code == "unauthorized"


async def test_aggregatorCannotMakeAUserTrainARoundTwice(economy: World) -> None:
    """Asking again for a round already trained (fresh noise twice would average it away, and spend ε twice) is
    refused, and the ledger is charged once."""
    _, aggregator, user, job_id, _ = await _job(economy)
    for i in (2, 3):  # the plan needs three participants
        options = ClientOptions(enabled=True, shopper_id=i, events=64).model_dump()
        await economy.call(await economy.role(user_role, f"user-{i}", federated=options, seed=3), PUBLISH_CARD)
    report = await economy.call(aggregator, RUN_FEDERATED, JobId(job_id=job_id))
    assert report.rounds[0].completed, report.rounds[0].reason
    spent = (await economy.call(user, PRIVACY_SPENT, Empty())).epsilon
    assert spent > 0
    blob = aggregator.blobs.put(b"\0" * 16)
    again = RoundStart(job_id=job_id, round=1, index=1, participants=[1, 2, 3], threshold=2, neighbours=None,
                       model=aggregator.blobs.grant(blob, user.address))  # fmt: skip
    with pytest.raises(RemoteError, match="already trained"):
        await aggregator.request(user.address, again, RoundKeys)
    assert (await economy.call(user, PRIVACY_SPENT, Empty())).epsilon == spent
