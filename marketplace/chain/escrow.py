"""Typed client for JobEscrow: the Open → Funded → Submitted → Completed | Rejected | Expired lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from marketplace.chain.base import ContractClient

ZERO_HASH = b"\x00" * 32


class JobStatus(IntEnum):
    """Lifecycle state of a job, as the contract's Status enum."""

    NONE = 0
    OPEN = 1
    FUNDED = 2
    SUBMITTED = 3
    COMPLETED = 4
    REJECTED = 5
    EXPIRED = 6


@dataclass(frozen=True)
class EscrowTerms:
    """What a client fixes when creating a job (amounts in token base units, deadline in unix seconds)."""

    provider: str
    evaluator: str
    deadline: int
    budget: int
    model_id: int = 0
    evaluator_fee_bps: int = 0
    spec_hash: bytes = ZERO_HASH


@dataclass(frozen=True)
class Job:
    """A job as stored on chain."""

    job_id: int
    client: str
    provider: str
    evaluator: str
    deadline: int
    status: JobStatus
    evaluator_fee_bps: int
    budget: int
    model_id: int
    spec_hash: bytes
    deliverable: bytes
    reason: bytes


@dataclass(frozen=True)
class JobCreated:
    """A JobCreated event."""

    job_id: int
    client: str
    provider: str
    evaluator: str
    budget: int
    deadline: int


@dataclass(frozen=True)
class JobFunded:
    """A JobFunded event: the budget is escrowed."""

    job_id: int
    amount: int


@dataclass(frozen=True)
class JobSubmitted:
    """A JobSubmitted event."""

    job_id: int
    deliverable: bytes
    deadline: int
    """The job's deadline after submission: no refund before it (at least submission + evaluation window)."""


@dataclass(frozen=True)
class JobCompleted:
    """A JobCompleted event: how the budget was paid out."""

    job_id: int
    reason: bytes
    score: int
    evaluator_fee: int
    royalties: int
    provider_amount: int


@dataclass(frozen=True)
class JobRejected:
    """A JobRejected event."""

    job_id: int
    by: str
    reason: bytes
    refunded: int


@dataclass(frozen=True)
class JobExpired:
    """A JobExpired event: the deadline passed and the client was refunded."""

    job_id: int
    refunded: int


class EscrowClient(ContractClient):
    """JobEscrow seen from one signer (client, provider, evaluator or bystander)."""

    contract_name = "JobEscrow"

    async def create_job(self, spec: EscrowTerms) -> JobCreated:
        """Create an Open job with this signer as client (the evaluator may be neither client nor provider)."""
        raw = (
            self._cs(spec.provider),
            self._cs(spec.evaluator),
            spec.deadline,
            spec.budget,
            spec.model_id,
            spec.evaluator_fee_bps,
            spec.spec_hash,
        )
        receipt = await self._send(self.contract.functions.createJob(raw))
        return self._one(
            receipt,
            "JobCreated",
            lambda a: JobCreated(a["jobId"], a["client"], a["provider"], a["evaluator"], a["budget"], a["deadline"]),
        )

    async def set_budget(self, job_id: int, budget: int) -> None:
        """Change an Open job's budget (client or provider)."""
        await self._send(self.contract.functions.setBudget(job_id, budget))

    async def fund(self, job_id: int, expected_budget: int) -> JobFunded:
        """Escrow the budget (client; needs an allowance for the escrow on the token)."""
        receipt = await self._send(self.contract.functions.fund(job_id, expected_budget))
        return self._one(receipt, "JobFunded", lambda a: JobFunded(a["jobId"], a["amount"]))

    async def submit(self, job_id: int, deliverable: bytes) -> JobSubmitted:
        """Submit the deliverable hash (provider); the deadline moves to at least now + the evaluation window."""
        receipt = await self._send(self.contract.functions.submit(job_id, deliverable))
        return self._one(
            receipt, "JobSubmitted", lambda a: JobSubmitted(a["jobId"], bytes(a["deliverable"]), a["deadline"])
        )

    async def complete(self, job_id: int, reason: bytes, score: int) -> JobCompleted:
        """Accept the work and pay out (evaluator)."""
        receipt = await self._send(self.contract.functions.complete(job_id, reason, score))
        return self._one(receipt, "JobCompleted", _completed)

    async def reject(self, job_id: int, reason: bytes) -> JobRejected:
        """Reject the job (client while Open, evaluator while Funded or Submitted)."""
        receipt = await self._send(self.contract.functions.reject(job_id, reason))
        return self._one(
            receipt, "JobRejected", lambda a: JobRejected(a["jobId"], a["by"], bytes(a["reason"]), a["refunded"])
        )

    async def claim_refund(self, job_id: int) -> JobExpired:
        """Expire a job after its deadline and refund the client (anyone).

        A submitted job's deadline is at least its submission + the evaluation window.
        """
        receipt = await self._send(self.contract.functions.claimRefund(job_id))
        return self._one(receipt, "JobExpired", lambda a: JobExpired(a["jobId"], a["refunded"]))

    async def get_job(self, job_id: int) -> Job:
        """A job by id."""
        raw = await self.conn.call(self.contract.functions.getJob(job_id))
        client, deadline, status, fee_bps, provider, budget, evaluator, model_id, spec, deliverable, reason = raw
        return Job(
            job_id,
            str(client),
            str(provider),
            str(evaluator),
            deadline,
            JobStatus(status),
            fee_bps,
            budget,
            model_id,
            bytes(spec),
            bytes(deliverable),
            bytes(reason),
        )

    async def evaluation_window(self) -> int:
        """Seconds after a submission during which the client cannot expire the job."""
        value: int = await self.conn.call(self.contract.functions.evaluationWindow())
        return value

    async def job_count(self) -> int:
        """Number of jobs created (the highest id)."""
        count: int = await self.conn.call(self.contract.functions.jobCount())
        return count


def _completed(args: dict[str, Any]) -> JobCompleted:
    return JobCompleted(
        args["jobId"],
        bytes(args["reason"]),
        args["score"],
        args["evaluatorFee"],
        args["royalties"],
        args["providerAmount"],
    )
