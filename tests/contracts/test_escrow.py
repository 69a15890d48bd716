"""JobEscrow on anvil: every lifecycle transition, payout split, and revert path."""

from __future__ import annotations

import pytest

from marketplace.chain import (
    AgentRegistryClient,
    ChainConnection,
    EscrowTerms,
    JobStatus,
    Lineage,
    LocalChain,
    ModelListing,
    Reputation,
)
from marketplace.chain.deploy import ESCROW_CONFIG
from tests.contracts.conftest import AGT, Actors, Clients, block_time, clients_for, expect_revert

pytestmark = pytest.mark.chain

BUDGET = 100 * AGT
WINDOW = ESCROW_CONFIG.evaluation_window
DELIVERABLE = b"\x11" * 32
REASON = b"\x22" * 32


async def _job(conn: ChainConnection, actors: Actors, **overrides: int) -> int:
    spec = EscrowTerms(
        provider=actors.bob.address,
        evaluator=actors.val1.address,
        deadline=overrides.pop("deadline", await block_time(conn) + 3600),
        budget=overrides.pop("budget", BUDGET),
        model_id=overrides.pop("model_id", 0),
        evaluator_fee_bps=overrides.pop("evaluator_fee_bps", 500),
    )
    created = await clients_for(conn, actors.alice).escrow.create_job(spec)
    return created.job_id


def _roles(conn: ChainConnection, actors: Actors) -> tuple[Clients, Clients, Clients]:
    return clients_for(conn, actors.alice), clients_for(conn, actors.bob), clients_for(conn, actors.val1)


async def test_createJob_opensJobWithTerms(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    job = await clients_for(conn, actors.carol).escrow.get_job(job_id)
    assert job.status is JobStatus.OPEN
    assert (job.client, job.provider, job.evaluator) == (actors.alice.address, actors.bob.address, actors.val1.address)
    assert (job.budget, job.evaluator_fee_bps) == (BUDGET, 500)
    assert await clients_for(conn, actors.carol).escrow.job_count() == 1


async def test_createJob_revertsWhenEvaluatorNotValidator(conn: ChainConnection, actors: Actors) -> None:
    escrow = clients_for(conn, actors.alice).escrow
    spec = EscrowTerms(actors.bob.address, actors.outsider.address, await block_time(conn) + 60, BUDGET)
    error = await expect_revert("EvaluatorNotValidator", escrow.create_job(spec))
    assert error.args_values == (actors.outsider.address,)


async def test_createJob_revertsWhenEvaluatorIsProvider(conn: ChainConnection, actors: Actors) -> None:
    escrow = clients_for(conn, actors.alice).escrow
    spec = EscrowTerms(actors.val1.address, actors.val1.address, await block_time(conn) + 60, BUDGET)
    await expect_revert("EvaluatorIsProvider", escrow.create_job(spec))


async def test_createJob_revertsWhenEvaluatorIsClient(conn: ChainConnection, actors: Actors) -> None:
    escrow = clients_for(conn, actors.val1).escrow
    spec = EscrowTerms(actors.bob.address, actors.val1.address, await block_time(conn) + 60, BUDGET)
    await expect_revert("EvaluatorIsClient", escrow.create_job(spec))


async def test_createJob_revertsOnZeroProvider(conn: ChainConnection, actors: Actors) -> None:
    escrow = clients_for(conn, actors.alice).escrow
    spec = EscrowTerms("0x" + "00" * 20, actors.val1.address, await block_time(conn) + 60, BUDGET)
    await expect_revert("ZeroAddress", escrow.create_job(spec))


async def test_createJob_revertsOnPastDeadline(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("InvalidDeadline", _job(conn, actors, deadline=await block_time(conn)))


async def test_createJob_revertsOnFeeAboveCap(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("FeeTooHigh", _job(conn, actors, evaluator_fee_bps=2_001))
    assert error.args_values == (2_001,)


async def test_createJob_revertsOnUnknownModel(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownModelId", _job(conn, actors, model_id=7))


async def test_setBudget_letsProviderRepriceOpenJob(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    _, bob, _ = _roles(conn, actors)
    await bob.escrow.set_budget(job_id, 120 * AGT)
    assert (await bob.escrow.get_job(job_id)).budget == 120 * AGT


async def test_setBudget_revertsForThirdParty(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await expect_revert("NotClientOrProvider", clients_for(conn, actors.carol).escrow.set_budget(job_id, 1))


async def test_setBudget_revertsOnceFunded(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, _, _ = _roles(conn, actors)
    await alice.escrow.fund(job_id, BUDGET)
    error = await expect_revert("WrongStatus", alice.escrow.set_budget(job_id, 1))
    assert error.args_values == (job_id, JobStatus.FUNDED)


async def test_fund_escrowsBudget(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, _, _ = _roles(conn, actors)
    before = await alice.token.balance_of(actors.alice.address)
    funded = await alice.escrow.fund(job_id, BUDGET)
    assert funded.amount == BUDGET
    assert await alice.token.balance_of(actors.alice.address) == before - BUDGET
    assert await alice.token.balance_of(alice.escrow.address) == BUDGET
    assert (await alice.escrow.get_job(job_id)).status is JobStatus.FUNDED


async def test_fund_revertsWhenPriceChanged(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, bob, _ = _roles(conn, actors)
    await bob.escrow.set_budget(job_id, 150 * AGT)
    error = await expect_revert("BudgetMismatch", alice.escrow.fund(job_id, BUDGET))
    assert error.args_values == (BUDGET, 150 * AGT)


async def test_fund_revertsOnZeroBudget(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors, budget=0)
    await expect_revert("ZeroBudget", clients_for(conn, actors.alice).escrow.fund(job_id, 0))


async def test_fund_revertsForNonClient(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await expect_revert("NotClient", clients_for(conn, actors.bob).escrow.fund(job_id, BUDGET))


async def test_fund_revertsAfterDeadline(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    chain.increase_time(3601)
    await expect_revert("DeadlinePassed", clients_for(conn, actors.alice).escrow.fund(job_id, BUDGET))


async def test_fund_revertsOnUnknownJob(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("UnknownJob", clients_for(conn, actors.alice).escrow.fund(42, BUDGET))
    assert error.args_values == (42,)


async def test_fund_revertsWithoutAllowance(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, _, _ = _roles(conn, actors)
    await alice.token.approve(alice.escrow.address, 0)
    await expect_revert("ERC20InsufficientAllowance", alice.escrow.fund(job_id, BUDGET))


async def test_submit_recordsDeliverable(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, bob, _ = _roles(conn, actors)
    await alice.escrow.fund(job_id, BUDGET)
    submitted = await bob.escrow.submit(job_id, DELIVERABLE)
    assert submitted.deliverable == DELIVERABLE
    job = await bob.escrow.get_job(job_id)
    assert (job.status, job.deliverable) == (JobStatus.SUBMITTED, DELIVERABLE)


async def test_submit_extendsDeadlineByEvaluationWindow(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, bob, _ = _roles(conn, actors)
    await alice.escrow.fund(job_id, BUDGET)
    submitted = await bob.escrow.submit(job_id, DELIVERABLE)
    assert submitted.deadline == await block_time(conn) + WINDOW
    assert (await bob.escrow.get_job(job_id)).deadline == submitted.deadline
    assert await bob.escrow.evaluation_window() == WINDOW


async def test_submit_keepsLaterDeadline(conn: ChainConnection, actors: Actors) -> None:
    deadline = await block_time(conn) + 2 * WINDOW
    job_id = await _job(conn, actors, deadline=deadline)
    alice, bob, _ = _roles(conn, actors)
    await alice.escrow.fund(job_id, BUDGET)
    assert (await bob.escrow.submit(job_id, DELIVERABLE)).deadline == deadline


async def test_submit_revertsForNonProvider(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, _, _ = _roles(conn, actors)
    await alice.escrow.fund(job_id, BUDGET)
    await expect_revert("NotProvider", alice.escrow.submit(job_id, DELIVERABLE))


async def test_submit_revertsBeforeFunding(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await expect_revert("WrongStatus", clients_for(conn, actors.bob).escrow.submit(job_id, DELIVERABLE))


async def test_submit_revertsAfterDeadline(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice, bob, _ = _roles(conn, actors)
    await alice.escrow.fund(job_id, BUDGET)
    chain.increase_time(3601)
    await expect_revert("DeadlinePassed", bob.escrow.submit(job_id, DELIVERABLE))


async def _submitted(conn: ChainConnection, actors: Actors, **overrides: int) -> int:
    job_id = await _job(conn, actors, **overrides)
    alice, bob, _ = _roles(conn, actors)
    budget = (await alice.escrow.get_job(job_id)).budget
    await alice.escrow.fund(job_id, budget)
    await bob.escrow.submit(job_id, DELIVERABLE)
    return job_id


async def test_complete_paysEvaluatorFeeAndProviderAndRecordsReceipt(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    _, bob, val = _roles(conn, actors)
    bob_before = await bob.token.balance_of(actors.bob.address)
    val_before = await bob.token.balance_of(actors.val1.address)
    completed = await val.escrow.complete(job_id, REASON, 80)
    assert (completed.evaluator_fee, completed.royalties, completed.provider_amount) == (5 * AGT, 0, 95 * AGT)
    assert await bob.token.balance_of(actors.bob.address) == bob_before + 95 * AGT
    assert await bob.token.balance_of(actors.val1.address) == val_before + 5 * AGT
    assert await bob.token.balance_of(bob.escrow.address) == 0
    job = await bob.escrow.get_job(job_id)
    assert (job.status, job.reason) == (JobStatus.COMPLETED, REASON)
    rep = await AgentRegistryClient(conn).reputation(actors.bob.address)
    assert (rep.count, rep.volume, rep.score_bps) == (1, BUDGET, 8_000)


async def test_complete_routesRoyaltiesAlongLineage(conn: ChainConnection, actors: Actors) -> None:
    carol = clients_for(conn, actors.carol)
    base = await carol.models.register_model(ModelListing(b"\x01" * 32))
    bob = clients_for(conn, actors.bob)
    lineage = Lineage(parents=((base.model_id, 1_000),), contributors=((actors.dave.address, 500),))
    child = await bob.models.register_model(ModelListing(b"\x02" * 32), lineage)
    job_id = await _submitted(conn, actors, model_id=child.model_id, evaluator_fee_bps=0)
    carol_before = await carol.token.balance_of(actors.carol.address)
    dave_before = await carol.token.balance_of(actors.dave.address)
    completed = await clients_for(conn, actors.val1).escrow.complete(job_id, REASON, 100)
    assert (completed.royalties, completed.provider_amount) == (15 * AGT, 85 * AGT)
    assert await carol.token.balance_of(actors.carol.address) == carol_before + 10 * AGT
    assert await carol.token.balance_of(actors.dave.address) == dave_before + 5 * AGT


async def test_complete_succeedsAfterOriginalDeadlineWithinEvaluationWindow(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _submitted(conn, actors)
    chain.increase_time(3600)
    completed = await clients_for(conn, actors.val1).escrow.complete(job_id, REASON, 70)
    assert completed.provider_amount == 95 * AGT


async def test_complete_revertsForNonEvaluator(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    await expect_revert("NotEvaluator", clients_for(conn, actors.alice).escrow.complete(job_id, REASON, 50))


async def test_complete_revertsBeforeSubmission(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await clients_for(conn, actors.alice).escrow.fund(job_id, BUDGET)
    await expect_revert("WrongStatus", clients_for(conn, actors.val1).escrow.complete(job_id, REASON, 50))


async def test_complete_revertsOnScoreAbove100(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    await expect_revert("ScoreOutOfRange", clients_for(conn, actors.val1).escrow.complete(job_id, REASON, 101))


async def test_complete_revertsWhenAlreadyCompleted(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    val = clients_for(conn, actors.val1)
    await val.escrow.complete(job_id, REASON, 50)
    await expect_revert("WrongStatus", val.escrow.complete(job_id, REASON, 50))


async def test_reject_letsClientCancelOpenJob(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    rejected = await clients_for(conn, actors.alice).escrow.reject(job_id, REASON)
    assert (rejected.by, rejected.refunded) == (actors.alice.address, 0)
    assert (await clients_for(conn, actors.alice).escrow.get_job(job_id)).status is JobStatus.REJECTED


async def test_reject_revertsForEvaluatorWhileOpen(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await expect_revert("NotClient", clients_for(conn, actors.val1).escrow.reject(job_id, REASON))


async def test_reject_refundsClientWhenEvaluatorRejectsFunded(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice = clients_for(conn, actors.alice)
    before = await alice.token.balance_of(actors.alice.address)
    await alice.escrow.fund(job_id, BUDGET)
    rejected = await clients_for(conn, actors.val1).escrow.reject(job_id, REASON)
    assert rejected.refunded == BUDGET
    assert await alice.token.balance_of(actors.alice.address) == before


async def test_reject_refundsClientWhenEvaluatorRejectsSubmission(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    alice = clients_for(conn, actors.alice)
    before = await alice.token.balance_of(actors.alice.address)
    await clients_for(conn, actors.val1).escrow.reject(job_id, REASON)
    assert await alice.token.balance_of(actors.alice.address) == before + BUDGET
    assert await AgentRegistryClient(conn).reputation(actors.bob.address) == Reputation(0, 0, 0)


async def test_reject_revertsForClientOnceFunded(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    await expect_revert("NotEvaluator", clients_for(conn, actors.alice).escrow.reject(job_id, REASON))


async def test_reject_revertsWhenSettled(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    val = clients_for(conn, actors.val1)
    await val.escrow.complete(job_id, REASON, 50)
    error = await expect_revert("WrongStatus", val.escrow.reject(job_id, REASON))
    assert error.args_values == (job_id, JobStatus.COMPLETED)


async def test_claimRefund_expiresFundedJobForAnyone(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    alice = clients_for(conn, actors.alice)
    before = await alice.token.balance_of(actors.alice.address)
    await alice.escrow.fund(job_id, BUDGET)
    chain.increase_time(3600)
    expired = await clients_for(conn, actors.carol).escrow.claim_refund(job_id)
    assert expired.refunded == BUDGET
    assert await alice.token.balance_of(actors.alice.address) == before
    assert (await alice.escrow.get_job(job_id)).status is JobStatus.EXPIRED


async def test_claimRefund_expiresSubmittedJobAfterEvaluationWindow(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _submitted(conn, actors)
    chain.increase_time(WINDOW)
    assert (await clients_for(conn, actors.bob).escrow.claim_refund(job_id)).refunded == BUDGET


async def test_claimRefund_revertsOnSubmittedJobDuringEvaluationWindow(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _submitted(conn, actors)
    chain.increase_time(3600)  # past the deadline the job was created with
    error = await expect_revert("NotExpired", clients_for(conn, actors.alice).escrow.claim_refund(job_id))
    assert error.args_values == ((await clients_for(conn, actors.alice).escrow.get_job(job_id)).deadline,)


async def test_claimRefund_expiresOpenJobWithoutTransfer(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _job(conn, actors)
    chain.increase_time(3600)
    assert (await clients_for(conn, actors.bob).escrow.claim_refund(job_id)).refunded == 0


async def test_claimRefund_revertsBeforeDeadline(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    await expect_revert("NotExpired", clients_for(conn, actors.alice).escrow.claim_refund(job_id))


async def test_claimRefund_revertsWhenCompleted(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    await clients_for(conn, actors.val1).escrow.complete(job_id, REASON, 50)
    chain.increase_time(3600)
    await expect_revert("WrongStatus", clients_for(conn, actors.alice).escrow.claim_refund(job_id))


async def test_claimRefund_revertsTwice(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _submitted(conn, actors)
    chain.increase_time(WINDOW)
    alice = clients_for(conn, actors.alice)
    await alice.escrow.claim_refund(job_id)
    error = await expect_revert("WrongStatus", alice.escrow.claim_refund(job_id))
    assert error.args_values == (job_id, JobStatus.EXPIRED)
