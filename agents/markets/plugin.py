"""The market plugin interface: what a market contributes to an economy run, and what the runner gives it.

A market is an object registered under the `agora.markets` entry-point group. It declares a scenario
section (a pydantic model read from `markets: {<name>: ...}` in a scenario file), the participants it
needs (name, role factory, funding, stake, options), the phases it runs, and what it adds to the report.
The runner (marketplace/sim) names no market and no role: it builds participants, funds them, runs every
market's phases in stage order, moves time, and accounts for tokens. Phases drive agents only through
`EconomyContext.call` (operator control commands), so any participant may live in another process.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from agents.capabilities.control import Command
from marketplace.chain import ChainConnection

T = TypeVar("T")
A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

Stage = Literal["setup", "trade", "settle", "after-deadlines"]
"""When a phase runs: setup (before cards are published), trade (one balance snapshot each), settle (before
every deadline passes), after-deadlines (the runner has moved time past every market's longest deadline)."""


class Participant(BaseModel):
    """An agent a market needs: its name, role, role factory (`module:function`), tokens to hold, stake to bond."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: str
    factory: str
    funding: int = 0
    stake: int = 0
    options: dict[str, Any] = {}


class Refund(BaseModel):
    """Money returned to a payer: an expired escrow or a channel remainder."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    payer: str
    amount: int
    reason: str


class ValidationTally(BaseModel):
    """What validators did."""

    model_config = ConfigDict(extra="forbid")

    sampled: int = 0
    agreed: int = 0
    disputed: int = 0
    slashed: int = 0
    attestations: int = 0


@dataclass
class Ledger:
    """What phases observed, for the report: every market writes what concerns it."""

    jobs: dict[str, Counter[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    claims: list[dict[str, Any]] = field(default_factory=list)
    royalties: Counter[str] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)
    refunds: list[Refund] = field(default_factory=list)
    validations: ValidationTally = field(default_factory=ValidationTally)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Free-form report sections by market name."""


class MarketPanel(BaseModel):
    """A market's live view for the dashboard: a titled table (cells are text or numbers) and a note."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    columns: list[str]
    rows: list[list[str | int | float]] = []
    note: str = ""


async def each(concurrency: int, items: Sequence[T], act: Callable[[T], Awaitable[None]]) -> None:
    """Run `act` on every item, at most `concurrency` at a time (1: strictly in order). The first failure
    cancels the rest and is raised."""
    if concurrency <= 1:
        for item in items:
            await act(item)
        return
    slots = asyncio.Semaphore(concurrency)

    async def bounded(item: T) -> None:
        async with slots:
            await act(item)

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(bounded(item))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None


class EconomyContext(Protocol):
    """What a phase may do: command agents, look up participants, inject faults, read the chain, record results."""

    seed: int
    concurrency: int
    """How many agents a phase may drive at once (the scenario's `concurrency`; 1 keeps the run reproducible)."""
    ledger: Ledger
    conn: ChainConnection
    """A read-mostly chain connection (the treasury's)."""

    async def call(self, name: str, command: Command[A, R], args: A, *, wait: float = 120.0) -> R:
        """Send a control command to the named participant and return its typed result."""
        ...

    def address(self, name: str) -> str:
        """The participant's agent address."""
        ...

    def account(self, name: str) -> str:
        """The participant's settlement account."""
        ...

    def names(self, role: str) -> list[str]:
        """Participants with this role, in creation order."""
        ...

    def owner_names(self) -> dict[str, str]:
        """Settlement account (lower-case) → participant name."""
        ...

    def alive(self, name: str) -> bool:
        """Whether the participant is still running."""
        ...

    async def kill(self, name: str) -> None:
        """Stop a participant (fault injection)."""
        ...

    def faults(self, phase: str) -> list[str]:
        """Participants the scenario kills in this phase."""
        ...

    def progress(self, phase: str, done: int, total: int) -> None:
        """Report progress of a long phase."""
        ...


@dataclass(frozen=True)
class Phase:
    """One step of a market: its name, stage, and the coroutine that runs it."""

    name: str
    stage: Stage
    run: Callable[[EconomyContext], Awaitable[None]]
    faults_inside: bool = False
    """The phase injects its own faults (mid-phase); otherwise the runner kills them when the phase starts."""


class Market(ABC):
    """A market plugin: subclass, set `name` and `section`, implement the three methods, register the instance
    under the `agora.markets` entry-point group."""

    name: ClassVar[str]
    section: ClassVar[type[BaseModel]]
    varying: ClassVar[frozenset[str]] = frozenset()
    """Keys of this market's report section that differ between runs of one seed by design (fresh keys,
    randomised proofs); a report's deterministic view leaves them out."""
    varying_gas: ClassVar[frozenset[str]] = frozenset()
    """Operations whose gas differs between runs of one seed by design (calldata holding randomised proofs)."""

    @abstractmethod
    def participants(self, section: Any, seed: int) -> list[Participant]:
        """The agents this market needs for a scenario section."""

    @abstractmethod
    def phases(self, section: Any) -> list[Phase]:
        """The phases this market runs for a scenario section."""

    def settle_window(self, section: Any) -> int:
        """How far (s) the runner must move time after the settle stage for this market's deadlines to pass."""
        return 0

    def labels(self) -> dict[str, str]:
        """Progress-bar labels by phase name."""
        return {}

    def plot(self, data: dict[str, Any], out_dir: Path) -> list[Path]:
        """Figures of this market's report section (`data`, as its phases recorded it), written into out_dir."""
        return []

    def summary(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """(measure, value) rows of this market's report section for the terminal summary."""
        return []

    def holders(self, data: dict[str, Any]) -> list[str]:
        """Accounts outside the participants that hold this market's tokens (e.g. fresh payees), from its report
        section: the runner counts their balances, so every token stays accounted for."""
        return []

    def panel(self, data: dict[str, Any]) -> MarketPanel | None:
        """This market's table on the live dashboard, from its report section as recorded so far (None: no panel).

        Called repeatedly while the economy runs, so `data` may be empty or partial."""
        return None
