"""Privacy budgets of federated learning: ε of DP-SGD participations and a per-user ledger that refuses overspending.

Each time a user agent trains locally with DP-SGD (`marketplace.ml.federated.local`) it spends privacy:
`steps` Poisson-sampled steps at sample rate q with noise multiplier σ. ε comes from Opacus' Rényi-DP (RDP)
analysis of the subsampled Gaussian mechanism. RDP composes by addition at each order α, so the ledger
keeps a user's participations, sums their RDP curves and converts the sum to (ε, δ) once, which is much
tighter than adding the ε of each participation.

Choice of δ: a conversion needs one δ, while participations may name different ones. Every ε here (of
one job or of a user's whole history) is reported at the smallest δ among the participations it covers,
so it never understates the spend; a user's budget is a total ε across all jobs at that δ.

Cost: Opacus' RDP of one (q, σ) pair takes 0.1-0.4 s, so it is computed once per pair and cached; each
ε after that is a vector sum and one conversion (~0.02 ms).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

RdpCurve = npt.NDArray[np.float64]

# Opacus' own orders, so ε here equals `RDPAccountant.get_epsilon` for the same history.
DEFAULT_ORDERS: tuple[float, ...] = tuple(float(order) for order in RDPAccountant.DEFAULT_ALPHAS)


class PrivacyBudgetExceeded(ValueError):
    """A planned training participation would take a user's total ε over their budget."""

    def __init__(self, user_id: str, job_id: str, spent: float, after: float, budget: float) -> None:
        super().__init__(
            f"user {user_id!r} cannot join job {job_id!r}: ε spent {spent:.4g} would become {after:.4g}, "
            f"over the budget of {budget:.4g}"
        )
        self.user_id = user_id
        self.job_id = job_id
        self.spent = spent
        self.after = after
        self.budget = budget

    def __reduce__(self) -> tuple[type[PrivacyBudgetExceeded], tuple[str, str, float, float, float]]:
        # Rebuilt from its fields, so the error survives pickling across an offload process pool intact.
        return (type(self), (self.user_id, self.job_id, self.spent, self.after, self.budget))


class LedgerFormatError(ValueError):
    """Serialized ledger text is not valid JSON of a supported ledger version."""


class Participation(BaseModel):
    """One DP-SGD training participation of a user: which job and round, and what it spent (σ, q, steps at δ)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    job_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    round: int = Field(ge=0)
    noise_multiplier: float = Field(ge=0.0)
    sample_rate: float = Field(gt=0.0, le=1.0)
    steps: int = Field(ge=1)
    delta: float = Field(gt=0.0, lt=1.0)


class PrivacyAccountant:
    """Computes ε of DP-SGD with Opacus' RDP analysis, cheaply enough to run for every user of every round."""

    def __init__(self, orders: Sequence[float] = DEFAULT_ORDERS) -> None:
        if not orders or any(not (math.isfinite(order) and order > 1.0) for order in orders):
            raise ValueError("RDP orders must be finite and greater than 1")
        self.orders = tuple(float(order) for order in orders)

    def rdp(self, noise_multiplier: float, sample_rate: float, steps: int) -> RdpCurve:
        """Return the RDP curve (one value per order) of `steps` DP-SGD steps at rate q and noise σ."""
        return _rdp_of_one_step(sample_rate, noise_multiplier, self.orders) * steps

    def epsilon(self, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
        """Return ε of `steps` DP-SGD steps at sample rate q and noise multiplier σ, for `delta`."""
        return self.epsilon_of_rdp(self.rdp(noise_multiplier, sample_rate, steps), delta)

    def epsilon_of_rdp(self, rdp: RdpCurve, delta: float) -> float:
        """Convert an RDP curve (e.g. a sum over participations) to ε at `delta`; inf when σ was 0."""
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if not rdp.any():
            return 0.0
        if np.isinf(rdp).all():
            return math.inf
        # Opacus warns when the best order is the first or last one: the bound is still valid, only looser
        # than a wider order range could give, and the orders are kept equal to Opacus' on purpose.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Optimal order is the (smallest|largest) alpha", category=UserWarning
            )
            epsilon, _ = get_privacy_spent(orders=list(self.orders), rdp=rdp, delta=delta)
        return float(epsilon)

    def epsilon_of(self, participations: Iterable[Participation]) -> float:
        """Return ε of several participations composed: RDP summed, converted once at their smallest δ."""
        chosen = list(participations)
        if not chosen:
            return 0.0
        total: RdpCurve = np.sum([self.rdp(p.noise_multiplier, p.sample_rate, p.steps) for p in chosen], axis=0)
        return self.epsilon_of_rdp(total, min(p.delta for p in chosen))


@functools.lru_cache(maxsize=4096)  # pure; one entry per (q, σ) pair, the slow part of every ε
def _rdp_of_one_step(sample_rate: float, noise_multiplier: float, orders: tuple[float, ...]) -> RdpCurve:
    curve = np.asarray(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=orders), float)
    curve.setflags(write=False)  # shared by every caller through the cache
    return curve


class EpsilonLedger:
    """Every DP training participation of every user, answering ε spent per job and in total.

    `charge` is the gate a user agent passes before training: it records the participation, or raises
    PrivacyBudgetExceeded and records nothing. Persist with `to_json` / `from_json`; storing the text is the
    caller's job.
    """

    def __init__(self, accountant: PrivacyAccountant | None = None) -> None:
        self.accountant = accountant or PrivacyAccountant()
        self._participations: dict[str, list[Participation]] = {}

    def participations(self, user_id: str) -> tuple[Participation, ...]:
        """Return the user's recorded participations, oldest first."""
        return tuple(self._participations.get(user_id, ()))

    def job_epsilon(self, user_id: str, job_id: str) -> float:
        """Return ε the user has spent on one job (its participations composed)."""
        return self.accountant.epsilon_of(p for p in self.participations(user_id) if p.job_id == job_id)

    def total_epsilon(self, user_id: str) -> float:
        """Return ε the user has spent across all jobs (all participations composed)."""
        return self.accountant.epsilon_of(self.participations(user_id))

    def would_exceed(self, user_id: str, planned: Participation, budget_epsilon: float) -> bool:
        """Return whether adding `planned` would take the user's total ε over `budget_epsilon`."""
        _check_budget(budget_epsilon)
        return self._epsilon_with(user_id, planned) > budget_epsilon

    def charge(self, user_id: str, planned: Participation, budget_epsilon: float) -> float:
        """Record `planned` and return the user's new total ε, or raise PrivacyBudgetExceeded recording nothing."""
        _check_budget(budget_epsilon)
        after = self._epsilon_with(user_id, planned)
        if after > budget_epsilon:
            raise PrivacyBudgetExceeded(user_id, planned.job_id, self.total_epsilon(user_id), after, budget_epsilon)
        self._participations.setdefault(user_id, []).append(planned)
        return after

    def to_json(self) -> str:
        """Serialize the ledger (versioned JSON); `from_json` restores an equal ledger."""
        document = _LedgerDocument(format="agora.epsilon-ledger", version=1, users=self._participations)
        return document.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes, accountant: PrivacyAccountant | None = None) -> EpsilonLedger:
        """Restore a ledger written by `to_json`; raise LedgerFormatError on anything else."""
        try:
            document = _LedgerDocument.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise LedgerFormatError(f"not a valid ε ledger: {where}: {first['msg']}") from exc
        ledger = cls(accountant)
        ledger._participations = {user: list(history) for user, history in document.users.items()}
        return ledger

    def _epsilon_with(self, user_id: str, planned: Participation) -> float:
        return self.accountant.epsilon_of([*self.participations(user_id), planned])


class _LedgerDocument(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    format: Literal["agora.epsilon-ledger"]
    version: Literal[1]
    users: dict[Annotated[str, StringConstraints(min_length=1)], list[Participation]]


def _check_budget(budget_epsilon: float) -> None:
    if not (math.isfinite(budget_epsilon) and budget_epsilon >= 0.0):
        raise ValueError(f"an ε budget must be finite and >= 0, got {budget_epsilon}")
