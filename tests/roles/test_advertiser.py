"""The advertiser role (agents.roles.advertiser.build) on the real contracts: it escrows a fine-tune with a seller
that trains and a validator that grades, pays only for a graded deliverable, and takes back a budget nobody earned."""

from __future__ import annotations

import pytest

from agents.base import AgoraAgent
from agents.blobs import GrantRefused
from agents.capabilities.escrow import FundedJob, TrainingOutcome, TrainingPlan
from agents.roles import advertiser as advertiser_role
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.roles.advertiser import DELIVER_TRAINING, FUND_TRAINING, RECLAIM_EXPIRED, Deliver, FundTraining
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import BUILD_MODELS, BuildModels, ModelOffer
from agents.roles.user import Refunds
from agents.state import Repository
from marketplace.chain import EscrowClient, JobStatus, TokenClient
from protocols.blobs import BlobRef
from tests.roles.world import AGT, FLOOR, PRICE, World

pytestmark = pytest.mark.chain

BASE = ModelOffer(id="rec-base", kind="recommender", price_per_call=PRICE, reserve_price=FLOOR)
FUNDING = 100 * AGT
TTL = 1_800
PLAN = TrainingPlan(
    base_model_id=BASE.id,
    catalogue=1,
    opening=20 * AGT,
    budget=60 * AGT,
    epochs=1,
    ttl=TTL,
    min_score=600_000,
    evaluator_fee_bps=500,
    examples=1_000,
)


async def _market(economy: World) -> tuple[AgoraAgent, AgoraAgent, AgoraAgent]:
    """A seller that fine-tunes its recommender (30..50 AGT a job), a staked validator, a funded advertiser."""
    seller = await economy.role(seller_role, "seller", training_price=50 * AGT, training_floor=30 * AGT)
    await economy.call(seller, BUILD_MODELS, BuildModels(models=[BASE], world_seed=7))
    validator = await economy.role(validator_role, "validator")
    await economy.stake(validator)
    for agent in (seller, validator):
        await economy.call(agent, PUBLISH_CARD)
    advertiser = await economy.role(advertiser_role, "advertiser", tokens=FUNDING, seed=11)
    await economy.call(advertiser, PUBLISH_CARD)  # its data is fetched from its own endpoint
    return seller, validator, advertiser


async def test_deliverTraining_gradedDeliverableCompletesAndPaysSeller(economy: World) -> None:
    seller, validator, advertiser = await _market(economy)
    token = TokenClient(economy.conn)
    seller_before = await token.balance_of(seller.keys.eth_address)

    funded: TrainingOutcome = await economy.call(
        advertiser, FUND_TRAINING, FundTraining(seller=seller.address, plan=PLAN)
    )

    assert funded.state == "funded"
    assert 30 * AGT <= funded.price <= PLAN.budget
    job = await EscrowClient(economy.conn).get_job(funded.escrow_job_id)
    assert (job.provider, job.evaluator) == (seller.keys.eth_address, validator.keys.eth_address)
    assert await token.balance_of(advertiser.keys.eth_address) == FUNDING - funded.price

    done: TrainingOutcome = await economy.call(
        advertiser, DELIVER_TRAINING, Deliver(escrow_job_id=funded.escrow_job_id)
    )

    assert done.state == "completed", done
    assert done.score >= PLAN.min_score
    assert (await EscrowClient(economy.conn).get_job(funded.escrow_job_id)).status == JobStatus.COMPLETED
    fee = funded.price * PLAN.evaluator_fee_bps // 10_000
    assert await token.balance_of(seller.keys.eth_address) - seller_before == funded.price - fee
    assert await token.balance_of(validator.keys.eth_address) == fee
    assert (await economy.call(advertiser, RECLAIM_EXPIRED)).amounts == []
    # Each party holds what it was granted, in its own folder: the held-out set reached the evaluator only,
    # the paid-for weights reached the client.
    record = Repository(advertiser.store, "escrow.client", FundedJob).get(str(funded.escrow_job_id))
    assert record is not None
    assert validator.blobs.has(record.heldout_ref)
    assert not seller.blobs.has(record.heldout_ref)
    assert seller.blobs.has(record.dataset_ref)
    assert not validator.blobs.has(record.dataset_ref)
    assert done.received
    assert advertiser.blobs.has(done.artifact_hash)


async def test_heldout_set_is_refused_to_the_seller_and_served_to_the_evaluator(economy: World) -> None:
    seller, validator, advertiser = await _market(economy)
    funded: TrainingOutcome = await economy.call(
        advertiser, FUND_TRAINING, FundTraining(seller=seller.address, plan=PLAN)
    )
    record = Repository(advertiser.store, "escrow.client", FundedJob).get(str(funded.escrow_job_id))
    assert record is not None
    assert validator.blobs.has(record.heldout_ref)  # fetched when the evaluator accepted the terms
    # The seller tries with a grant of its own making, and by replaying the evaluator's: both refused.
    stolen = advertiser.blobs.grant(record.heldout_ref, validator.address)
    with pytest.raises(GrantRefused):
        await seller.blobs.fetch(stolen)
    forged = BlobRef.parse_obj({**stolen.dict(), "grant": {**stolen.grant.dict(), "peer": seller.address}})
    with pytest.raises(GrantRefused):
        await seller.blobs.fetch(forged)
    assert not seller.blobs.has(record.heldout_ref)


async def test_deliverTraining_sellerStoppedAfterFundingBudgetReclaimedAfterDeadline(economy: World) -> None:
    seller, _, advertiser = await _market(economy)
    token = TokenClient(economy.conn)
    funded: TrainingOutcome = await economy.call(
        advertiser, FUND_TRAINING, FundTraining(seller=seller.address, plan=PLAN)
    )
    assert funded.state == "funded"
    await economy.stop(seller)

    undelivered: TrainingOutcome = await economy.call(
        advertiser, DELIVER_TRAINING, Deliver(escrow_job_id=funded.escrow_job_id)
    )
    early: Refunds = await economy.call(advertiser, RECLAIM_EXPIRED)

    assert undelivered.state == "not-delivered"
    assert early.amounts == []  # before the deadline the budget stays in escrow
    assert await token.balance_of(advertiser.keys.eth_address) == FUNDING - funded.price

    economy.chain.increase_time(TTL + 1)
    refunds: Refunds = await economy.call(advertiser, RECLAIM_EXPIRED)

    assert refunds.amounts == [funded.price]
    assert await token.balance_of(advertiser.keys.eth_address) == FUNDING
    assert (await EscrowClient(economy.conn).get_job(funded.escrow_job_id)).status == JobStatus.EXPIRED
    assert (await economy.call(advertiser, RECLAIM_EXPIRED)).amounts == []
