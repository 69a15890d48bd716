"""Negotiation decisions as small async interfaces (pricing, concession, acceptance) with rule-based defaults.

Policies only propose: the negotiation engine (agents/capabilities/negotiation.py) clamps every offer to
the buyer's budget and the seller's floor and refuses any acceptance beyond them, so a policy (an LLM,
say) can be slow or wrong without overspending. All money is int base units; time-dependent concession
uses exact fractions, never floats, so two runs with the same clock make the same offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Protocol

from protocols.negotiation import JobSpec

Side = Literal["buyer", "seller"]


@dataclass(frozen=True)
class NegotiationView:
    """Where a negotiation stands, as a policy sees it (times in unix seconds, prices in base units)."""

    started_at: float
    deadline: float
    round: int
    max_rounds: int
    our_last: int | None = None
    their_last: int | None = None

    def progress(self, now: float) -> Fraction:
        """How far along the negotiation is, 0..1: the later of elapsed time and used rounds."""
        span = max(self.deadline - self.started_at, 1e-9)
        by_time = Fraction(max(0.0, min(1.0, (now - self.started_at) / span))).limit_denominator(1_000_000)
        by_rounds = Fraction(min(self.round, self.max_rounds), max(self.max_rounds, 1))
        return max(by_time, by_rounds)


class PricingPolicy(Protocol):
    """A seller's prices for a job: where it opens and the least it will take (None: not for sale)."""

    async def quote(self, job: JobSpec) -> tuple[int, int] | None:
        """(opening price, reservation price) for the job, or None to decline."""
        ...


class ConcessionPolicy(Protocol):
    """The next price to offer, moving from an opening price towards the reservation price."""

    async def offer(self, opening: int, reservation: int, view: NegotiationView, now: float) -> int:
        """The price to offer now."""
        ...


class AcceptancePolicy(Protocol):
    """Whether to take the other side's price."""

    async def accepts(self, side: Side, price: int, our_next: int, reservation: int) -> bool:
        """True to accept `price` rather than offer `our_next`."""
        ...


@dataclass(frozen=True)
class UnitPricing:
    """Sells listed models at `unit_price` per unit, opening `markup_percent` above the floor."""

    unit_price: int
    floor_unit_price: int
    models: frozenset[str] | None = None

    async def quote(self, job: JobSpec) -> tuple[int, int] | None:
        """(units × unit_price, units × floor_unit_price), or None for models not sold here."""
        if job.units <= 0 or (self.models is not None and job.model_id not in self.models):
            return None
        return job.units * self.unit_price, job.units * self.floor_unit_price


@dataclass(frozen=True)
class TimeDependentConcession:
    """Faratin-style concession: offer = opening + (reservation − opening) · progress^exponent.

    exponent 1 concedes linearly; larger exponents (Boulware) hold firm until near the deadline.
    """

    exponent: int = 1

    async def offer(self, opening: int, reservation: int, view: NegotiationView, now: float) -> int:
        """The time-dependent offer, rounded towards our own interest and never past the reservation."""
        step = (reservation - opening) * view.progress(now) ** self.exponent
        price = opening + (step.__floor__() if reservation > opening else step.__ceil__())
        low, high = sorted((opening, reservation))
        return min(max(price, low), high)


@dataclass(frozen=True)
class AcceptIfNoWorse:
    """Accept when the other side's price is at least as good as our own next offer and within our limit."""

    async def accepts(self, side: Side, price: int, our_next: int, reservation: int) -> bool:
        """Buyers accept prices ≤ min(next offer, limit); sellers accept prices ≥ max(next offer, floor)."""
        if side == "buyer":
            return price <= our_next and price <= reservation
        return price >= our_next and price >= reservation


@dataclass(frozen=True)
class NegotiationPolicy:
    """The three decisions a negotiating role needs, bundled for injection."""

    concession: ConcessionPolicy = TimeDependentConcession()
    acceptance: AcceptancePolicy = AcceptIfNoWorse()
