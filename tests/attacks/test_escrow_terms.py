"""Escrow attacks by a client against a provider (issue 10, finding 4): the terms a fine-tune is judged by are
committed in the job's spec hash before the provider works, the evaluator keeps them, and the provider has the
deliverable graded itself; a job naming another model than the one fine-tuned is refused before any work."""

from __future__ import annotations

import pytest

from agents.base import AgoraAgent
from agents.capabilities.escrow import FundedJob, TrainingOutcome, TrainingPlan, heldout_commitment
from agents.roles import advertiser as advertiser_role
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.roles.advertiser import FUND_TRAINING, FundTraining
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import BUILD_MODELS, BuildModels, ModelOffer
from agents.state import Repository
from marketplace.chain import EscrowClient, EscrowTerms, JobStatus, ModelListing, TokenClient
from protocols.errors import ErrorReply
from protocols.evaluation import EvaluationTerms, TermsAccepted
from protocols.jobs import TrainingRequest, TrainingResult
from tests.attacks.agent_world import chain, economy
from tests.roles.world import AGT, FLOOR, PRICE, World

pytestmark = pytest.mark.chain

BASE = ModelOffer(id="rec-base", kind="recommender", price_per_call=PRICE, reserve_price=FLOOR)
PLAN = TrainingPlan(
    base_model_id=BASE.id, catalogue=1, opening=20 * AGT, budget=60 * AGT, epochs=1, ttl=1_800,
    min_score=600_000, examples=1_000,
)  # fmt: skip


async def _funded(economy: World) -> tuple[AgoraAgent, AgoraAgent, AgoraAgent, FundedJob]:
    """A seller that fine-tunes, a staked validator, an advertiser that funded a job; the advertiser's record."""
    seller = await economy.role(seller_role, "seller", training_price=50 * AGT, training_floor=30 * AGT)
    await economy.call(seller, BUILD_MODELS, BuildModels(models=[BASE], world_seed=7))
    validator = await economy.role(validator_role, "validator")
    await economy.stake(validator)
    for agent in (seller, validator):
        await economy.call(agent, PUBLISH_CARD)
    advertiser = await economy.role(advertiser_role, "advertiser", tokens=100 * AGT, seed=11)
    await economy.call(advertiser, PUBLISH_CARD)
    funded: TrainingOutcome = await economy.call(
        advertiser, FUND_TRAINING, FundTraining(seller=seller.address, plan=PLAN)
    )
    record = Repository(advertiser.store, "escrow.client", FundedJob).get(str(funded.escrow_job_id))
    assert record is not None
    return seller, validator, advertiser, record


def _training_request(job: FundedJob, advertiser: AgoraAgent, seller: AgoraAgent) -> TrainingRequest:
    """The request the client would send (its data granted to the seller), for anyone to deliver."""
    return TrainingRequest(
        job_id=job.negotiation_id, base_model_id=job.plan.base_model_id,
        dataset=advertiser.blobs.grant(job.dataset_ref, seller.address),
        epochs=job.plan.epochs, price=job.price, escrow_job_id=job.escrow_job_id,
        heldout_commitment=heldout_commitment(job.heldout_ref, job.salt), metric=job.metric,
        min_score=job.plan.min_score, evaluator=job.evaluator_account,
    )  # fmt: skip


async def test_clientCannotTightenTermsAfterFunding(economy: World) -> None:
    """A client that re-sends the evaluator stricter terms (a higher least score) is refused: the provider is
    graded by the committed terms and paid."""
    seller, validator, advertiser, job = await _funded(economy)
    client = await economy.buyer("client-double")
    stricter = EvaluationTerms(
        escrow_job_id=job.escrow_job_id, dataset_ref=job.dataset_ref, epochs=job.plan.epochs,
        heldout=advertiser.blobs.grant(job.heldout_ref, validator.address), salt=job.salt, metric=job.metric,
        min_score=999_999,
    )  # fmt: skip
    assert isinstance(await client.probe.ask(validator.address, stricter, (TermsAccepted,)), ErrorReply)

    result = await client.probe.ask(
        seller.address, _training_request(job, advertiser, seller), (TrainingResult,), wait=120
    )
    assert isinstance(result, TrainingResult), result
    assert (await EscrowClient(economy.conn).get_job(job.escrow_job_id)).status == JobStatus.COMPLETED


async def test_clientWithholdingGradeRequestCannotStallPayment(economy: World) -> None:
    """The client hands over the data but never asks for a grade: the provider has it graded and is paid anyway,
    so the client cannot let the job expire and take the budget back after the work is done."""
    seller, _, advertiser, job = await _funded(economy)
    token = TokenClient(economy.conn)
    before = await token.balance_of(seller.keys.eth_address)
    courier = await economy.buyer("courier")  # delivers the request exactly as the client would, then nothing else
    result = await courier.probe.ask(
        seller.address, _training_request(job, advertiser, seller), (TrainingResult,), wait=120
    )

    assert isinstance(result, TrainingResult), result
    assert (await EscrowClient(economy.conn).get_job(job.escrow_job_id)).status == JobStatus.COMPLETED
    assert await token.balance_of(seller.keys.eth_address) > before


async def test_providerRefusesTermsTheJobDidNotCommitTo(economy: World) -> None:
    """A request whose terms differ from the spec hash (a harder least score) is refused before any training."""
    seller, _, advertiser, job = await _funded(economy)
    courier = await economy.buyer("courier")
    harder = _training_request(job, advertiser, seller).copy(update={"min_score": 990_000})
    assert isinstance(await courier.probe.ask(seller.address, harder, (TrainingResult,), wait=60), ErrorReply)
    assert (await EscrowClient(economy.conn).get_job(job.escrow_job_id)).status == JobStatus.FUNDED


async def test_jobNamingAnotherModelRefusedBeforeTraining(economy: World) -> None:
    """A client that points the job's modelId at another model (whose royalty pool it controls) gets no work."""
    seller, validator, advertiser, job = await _funded(economy)
    client = await economy.buyer("self-dealer", tokens=100 * AGT)
    registry = client.settlement.model_registry
    own = await registry.register_model(ModelListing(content_hash=b"\x07" * 32, uri="agora://model/recommender/mine"))
    escrow = EscrowClient(client.settlement.conn)
    terms = EscrowTerms(
        provider=seller.keys.eth_address,
        evaluator=validator.keys.eth_address,
        deadline=await client.settlement.chain_time() + 1_800,
        budget=job.price,
        model_id=own.model_id,
        evaluator_fee_bps=500,
        spec_hash=b"\x01" * 32,
    )
    created = await escrow.create_job(terms)
    await client.settlement.token.approve(escrow.address, job.price)
    await escrow.fund(created.job_id, job.price)
    request = _training_request(job, advertiser, seller).copy(update={"escrow_job_id": created.job_id})
    assert isinstance(await client.probe.ask(seller.address, request, (TrainingResult,), wait=60), ErrorReply)
    assert (await escrow.get_job(created.job_id)).status == JobStatus.FUNDED
