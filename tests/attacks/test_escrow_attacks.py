"""Attacks on training escrow: a client front-running the evaluator's verdict with a refund, a client judging
its own job.
"""

from __future__ import annotations

import pytest

from marketplace.chain import ChainConnection, EscrowTerms, JobStatus, LocalChain
from tests.contracts.conftest import AGT, Actors, block_time, clients_for, expect_revert

pytestmark = pytest.mark.chain

BUDGET = 100 * AGT


async def test_client_cannot_front_run_complete_with_refund(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    """The provider delivers just before the deadline; at the deadline the client asks for its budget back
    before the evaluator's `complete` lands (it already has the deliverable).

    Before: claimRefund worked at the deadline whatever the status, so the client kept the work and the
    budget. Now a submission gives the evaluator its evaluation window first.
    """
    client, provider, evaluator = (clients_for(conn, a) for a in (actors.alice, actors.bob, actors.val1))
    deadline = await block_time(conn) + 3_600
    job_id = (
        await client.escrow.create_job(EscrowTerms(actors.bob.address, actors.val1.address, deadline, BUDGET))
    ).job_id
    await client.escrow.fund(job_id, BUDGET)
    chain.increase_time(3_500)
    await provider.escrow.submit(job_id, b"\x11" * 32)
    chain.increase_time(200)  # past the original deadline
    await expect_revert("NotExpired", client.escrow.claim_refund(job_id))
    before = await provider.token.balance_of(actors.bob.address)
    await evaluator.escrow.complete(job_id, b"\x22" * 32, 90)
    assert (await client.escrow.get_job(job_id)).status is JobStatus.COMPLETED
    assert await provider.token.balance_of(actors.bob.address) == before + BUDGET


async def test_client_cannot_be_its_own_evaluator(conn: ChainConnection, actors: Actors) -> None:
    """A staked client names itself evaluator, takes the deliverable, then rejects it and is refunded."""
    client = clients_for(conn, actors.val1)
    spec = EscrowTerms(actors.bob.address, actors.val1.address, await block_time(conn) + 3_600, BUDGET)
    await expect_revert("EvaluatorIsClient", client.escrow.create_job(spec))
