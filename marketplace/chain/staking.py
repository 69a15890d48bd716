"""Typed client for ValidatorStaking: stake, unbond, select, attest, and committee disputes that slash.

A dispute runs: `open_dispute` (a challenger with its own different attestation, within the
attestation window) → `draw_committee` (anyone, from the block after the open) → `vote` (committee
members only, before the deadline) → `resolve` (anyone, after the deadline).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from web3.exceptions import ContractCustomError, ContractLogicError

from marketplace.chain.base import ContractClient


class Ballot(IntEnum):
    """How a committee member voted, as the contract's Ballot enum."""

    ABSENT = 0
    SUPPORTS = 1
    OPPOSES = 2


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
class AttestationInfo:
    """One validator's attestation of a task: result, time (0: none) and whether it was slashed."""

    result_hash: bytes
    attested_at: int
    slashed: bool


@dataclass(frozen=True)
class Dispute:
    """A dispute and who stands on which side."""

    dispute_id: int
    task_id: bytes
    accused: str
    accused_result: bytes
    deadline: int
    """Committee votes are accepted until this chain time; resolution after it."""
    resolved: bool
    upheld: bool
    """After a decided resolution: the accused's result won."""
    supporters: tuple[str, ...]
    """The accused, then the committee members who voted for its result."""
    opponents: tuple[str, ...]
    """The challenger, then the committee members who voted against it."""
    challenger: str
    draw_block: int
    """The block whose hash seeds the committee; drawable once a later block exists."""
    drawn: bool
    decided: bool
    """After resolution: the committee reached quorum (otherwise nobody was slashed)."""
    support_weight: int
    """Stake of the committee members who voted for the accused's result."""
    oppose_weight: int
    """Stake of the committee members who voted against it."""


@dataclass(frozen=True)
class DisputeOpened:
    """A DisputeOpened event."""

    dispute_id: int
    task_id: bytes
    accused: str
    challenger: str
    draw_block: int
    deadline: int


@dataclass(frozen=True)
class CommitteeSeat:
    """One committee member: its voting weight (active stake at the draw) and its vote so far."""

    member: str
    weight: int
    ballot: Ballot = Ballot.ABSENT


@dataclass(frozen=True)
class Committee:
    """The committee of one dispute, in draw order."""

    dispute_id: int
    seats: tuple[CommitteeSeat, ...]

    @property
    def members(self) -> tuple[str, ...]:
        """The members' addresses."""
        return tuple(seat.member for seat in self.seats)

    @property
    def weight(self) -> int:
        """Total voting weight of the committee."""
        return sum(seat.weight for seat in self.seats)

    @property
    def voted_weight(self) -> int:
        """Weight of the members who have voted."""
        return sum(seat.weight for seat in self.seats if seat.ballot is not Ballot.ABSENT)

    @property
    def has_quorum(self) -> bool:
        """Whether members holding more than half the weight voted (the dispute will be decided)."""
        return 2 * self.voted_weight > self.weight

    def includes(self, account: str) -> bool:
        """Whether `account` sits on the committee."""
        return account.lower() in {member.lower() for member in self.members}


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
    decided: bool = True
    """False when the committee missed quorum: nobody was slashed."""


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
        """Challenge another validator's attestation with this signer's own, different, attested result.

        The signer must have attested `result_hash` for the task first, and the accused's attestation
        must be younger than the attestation window. Then draw the committee (`draw_committee`).
        """
        receipt = await self._send(self.contract.functions.openDispute(task_id, self._cs(accused), result_hash))
        return self._one(
            receipt,
            "DisputeOpened",
            lambda a: DisputeOpened(
                a["disputeId"], bytes(a["taskId"]), a["accused"], a["challenger"], a["drawBlock"], a["deadline"]
            ),
        )

    async def draw_committee(self, dispute_id: int) -> Committee | None:
        """Draw a dispute's committee (anyone, once a block after the open exists, before the deadline).

        Returns None when the seed block was more than 256 blocks old: the draw moved to the current
        block, so call again from the next block. Reverts DrawTooEarly in the open's own block.
        """
        fn = self.contract.functions.drawCommittee(dispute_id)
        try:
            # Estimated in the pending block, where the transaction lands: against the latest block
            # a draw sent right after the open would look too early.
            estimate = await fn.estimate_gas({"from": self.conn.address}, block_identifier="pending")
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.conn.decode_revert(exc) from exc
        receipt = await self._send(fn, gas=int(estimate * 1.2) + 10_000)
        drawn = self._decode(
            receipt,
            "CommitteeDrawn",
            lambda a: Committee(
                a["disputeId"],
                tuple(CommitteeSeat(str(m), int(w)) for m, w in zip(a["members"], a["weights"], strict=True)),
            ),
        )
        return drawn[0] if drawn else None

    async def committee_of(self, dispute_id: int) -> Committee:
        """A dispute's committee with each member's weight and vote (no seats until drawn)."""
        members, weights, ballots = await self.conn.call(self.contract.functions.committeeOf(dispute_id))
        seats = (CommitteeSeat(str(m), int(w), Ballot(b)) for m, w, b in zip(members, weights, ballots, strict=True))
        return Committee(dispute_id, tuple(seats))

    async def vote(self, dispute_id: int, result_hash: bytes) -> bool:
        """Vote as a committee member with this signer's re-executed result; returns whether it supports the accused."""
        receipt = await self._send(self.contract.functions.vote(dispute_id, result_hash))
        supports: bool = self._one(receipt, "Voted", lambda a: a["supportsAccused"])
        return supports

    async def resolve(self, dispute_id: int) -> DisputeResolved:
        """Resolve a dispute after its voting window (anyone); with quorum, slashes the losing side."""
        receipt = await self._send(self.contract.functions.resolve(dispute_id))
        slashes = tuple(self._decode(receipt, "Slashed", lambda a: Slashed(a["validator"], a["amount"])))
        return self._one(receipt, "DisputeResolved", lambda a: _resolved(a, slashes))

    async def select_validators(self, seed: bytes, count: int) -> list[str]:
        """Up to `count` distinct eligible validators, stake-weighted from `seed` (fewer if fewer are eligible)."""
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

    async def attestation_info(self, task_id: bytes, validator: str) -> AttestationInfo:
        """A validator's attestation of a task with its time and whether it was slashed."""
        fn = self.contract.functions.attestationInfo(task_id, self._cs(validator))
        result_hash, attested_at, slashed = await self.conn.call(fn)
        return AttestationInfo(bytes(result_hash), attested_at, slashed)

    async def challenge_of(self, task_id: bytes, accused: str, challenger: str) -> int:
        """The dispute `challenger` opened over `accused`'s attestation of a task (0 if none)."""
        fn = self.contract.functions.challengeOf(task_id, self._cs(accused), self._cs(challenger))
        dispute_id: int = await self.conn.call(fn)
        return dispute_id

    async def dispute_of(self, dispute_id: int) -> Dispute:
        """A dispute with its supporters and opponents."""
        raw, supporters, opponents = await self.conn.call(self.contract.functions.disputeOf(dispute_id))
        (
            task_id,
            accused_result,
            accused,
            deadline,
            resolved,
            upheld,
            decided,
            drawn,
            challenger,
            draw_block,
            *weights,
        ) = raw
        support_weight, oppose_weight = weights
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
            str(challenger),
            draw_block,
            drawn,
            decided,
            support_weight,
            oppose_weight,
        )

    async def validators(self) -> list[str]:
        """The eligible set: every account whose active stake is at least the minimum."""
        result: list[str] = await self.conn.call(self.contract.functions.validators())
        return [str(v) for v in result]

    async def min_stake(self) -> int:
        """The minimum active stake of a validator."""
        value: int = await self.conn.call(self.contract.functions.minStake())
        return value

    async def attestation_window(self) -> int:
        """Seconds after an attestation during which disputes may open against it."""
        value: int = await self.conn.call(self.contract.functions.attestationWindow())
        return value

    async def dispute_window(self) -> int:
        """Seconds a dispute's committee may vote."""
        value: int = await self.conn.call(self.contract.functions.disputeWindow())
        return value

    async def committee_size(self) -> int:
        """Members drawn per dispute (fewer when fewer are eligible)."""
        value: int = await self.conn.call(self.contract.functions.committeeSize())
        return value


def _resolved(args: dict[str, Any], slashes: tuple[Slashed, ...]) -> DisputeResolved:
    return DisputeResolved(
        args["disputeId"],
        args["upheld"],
        args["slashed"],
        args["perWinner"],
        args["toTreasury"],
        slashes,
        args["decided"],
    )
