"""Typed client for ValidatorStaking: stake, unbond, select, attest, dispute and slash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketplace.chain.base import ContractClient


@dataclass(frozen=True)
class StakeInfo:
    """Stake of one validator (token base units; release time in unix seconds)."""

    active: int
    unbonding: int
    release_at: int

    @property
    def total(self) -> int:
        """Active plus unbonding stake: all of it is slashable."""
        return self.active + self.unbonding


@dataclass(frozen=True)
class Dispute:
    """A dispute and who stands on which side."""

    dispute_id: int
    task_id: bytes
    accused: str
    accused_result: bytes
    deadline: int
    resolved: bool
    upheld: bool
    supporters: tuple[str, ...]
    """Validators whose result equals the accused's (the accused first)."""
    opponents: tuple[str, ...]
    """Validators with a different result (the challenger first)."""


@dataclass(frozen=True)
class DisputeOpened:
    """A DisputeOpened event."""

    dispute_id: int
    task_id: bytes
    accused: str
    challenger: str


@dataclass(frozen=True)
class Slashed:
    """A Slashed event."""

    validator: str
    amount: int


@dataclass(frozen=True)
class DisputeResolved:
    """A DisputeResolved event, with the Slashed events of the same transaction."""

    dispute_id: int
    upheld: bool
    slashed: int
    per_winner: int
    to_treasury: int
    slashes: tuple[Slashed, ...] = ()


class StakingClient(ContractClient):
    """ValidatorStaking seen from one signer."""

    contract_name = "ValidatorStaking"

    async def stake(self, amount: int) -> None:
        """Add stake (needs a token allowance for the contract)."""
        await self._send(self.contract.functions.stake(amount))

    async def request_unstake(self, amount: int) -> int:
        """Move active stake into unbonding; returns the release time."""
        receipt = await self._send(self.contract.functions.requestUnstake(amount))
        release_at: int = self._one(receipt, "UnstakeRequested", lambda a: a["releaseAt"])
        return release_at

    async def withdraw(self) -> int:
        """Withdraw unbonded stake after its release time; returns the amount."""
        receipt = await self._send(self.contract.functions.withdraw())
        amount: int = self._one(receipt, "Withdrawn", lambda a: a["amount"])
        return amount

    async def attest(self, task_id: bytes, result_hash: bytes) -> None:
        """Attest a task's result (active validators, once per task)."""
        await self._send(self.contract.functions.attest(task_id, result_hash))

    async def open_dispute(self, task_id: bytes, accused: str, result_hash: bytes) -> DisputeOpened:
        """Challenge another validator's attestation with this signer's different result."""
        receipt = await self._send(self.contract.functions.openDispute(task_id, self._cs(accused), result_hash))
        return self._one(
            receipt,
            "DisputeOpened",
            lambda a: DisputeOpened(a["disputeId"], bytes(a["taskId"]), a["accused"], a["challenger"]),
        )

    async def vote(self, dispute_id: int, result_hash: bytes) -> bool:
        """Vote with this signer's re-executed result; returns whether it supports the accused."""
        receipt = await self._send(self.contract.functions.vote(dispute_id, result_hash))
        supports: bool = self._one(receipt, "Voted", lambda a: a["supportsAccused"])
        return supports

    async def resolve(self, dispute_id: int) -> DisputeResolved:
        """Resolve a dispute after its voting window (anyone); slashes the losing side."""
        receipt = await self._send(self.contract.functions.resolve(dispute_id))
        slashes = tuple(self._decode(receipt, "Slashed", lambda a: Slashed(a["validator"], a["amount"])))
        return self._one(receipt, "DisputeResolved", lambda a: _resolved(a, slashes))

    async def select_validators(self, seed: bytes, count: int) -> list[str]:
        """`count` distinct validators picked stake-weighted from `seed`."""
        selected: list[str] = await self.conn.call(self.contract.functions.selectValidators(seed, count))
        return [str(s) for s in selected]

    async def is_validator(self, account: str) -> bool:
        """Whether an account holds at least the minimum active stake."""
        result: bool = await self.conn.call(self.contract.functions.isValidator(self._cs(account)))
        return result

    async def stake_of(self, account: str) -> StakeInfo:
        """The stake of an account."""
        active, unbonding, release_at = await self.conn.call(self.contract.functions.stakeOf(self._cs(account)))
        return StakeInfo(active, unbonding, release_at)

    async def attestation_of(self, task_id: bytes, validator: str) -> bytes:
        """The result a validator attested for a task (32 zero bytes if none)."""
        result: bytes = await self.conn.call(self.contract.functions.attestationOf(task_id, self._cs(validator)))
        return bytes(result)

    async def dispute_of(self, dispute_id: int) -> Dispute:
        """A dispute with its supporters and opponents."""
        raw, supporters, opponents = await self.conn.call(self.contract.functions.disputeOf(dispute_id))
        task_id, accused, accused_result, deadline, resolved, upheld = raw
        return Dispute(
            dispute_id,
            bytes(task_id),
            str(accused),
            bytes(accused_result),
            deadline,
            resolved,
            upheld,
            tuple(str(s) for s in supporters),
            tuple(str(o) for o in opponents),
        )

    async def validators(self) -> list[str]:
        """Every account that ever staked."""
        result: list[str] = await self.conn.call(self.contract.functions.validators())
        return [str(v) for v in result]

    async def min_stake(self) -> int:
        """The minimum active stake of a validator."""
        value: int = await self.conn.call(self.contract.functions.minStake())
        return value


def _resolved(args: dict[str, Any], slashes: tuple[Slashed, ...]) -> DisputeResolved:
    return DisputeResolved(
        args["disputeId"], args["upheld"], args["slashed"], args["perWinner"], args["toTreasury"], slashes
    )
