"""The assistants market: user agents run by a language model through tools, within a signed spending mandate.

Scenario section `markets.assistants` (runs alongside `inference`, whose sellers it buys from); phases:
assistants (trade: each assistant is given its task), assistant refunds (after deadlines: unspent deposits).
The report shows each assistant's tool transcript and its spend against its mandate.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agents.capabilities.control import Empty
from agents.markets.plugin import EconomyContext, Market, Participant, Phase, Refund
from agents.roles import assistant, user
from agents.roles.assistant import ScriptStep, Task

AGT = 10**18

DEFAULT_SCRIPT = [
    ScriptStep(tool="search_sellers", args={"kind": "classifier"}),
    ScriptStep(tool="buy_inference", args={"kind": "classifier", "calls": 4, "max_per_call": 12 * 10**15}),
    ScriptStep(tool="buy_inference", args={"kind": "classifier", "calls": 40, "max_per_call": 12 * 10**15}),
    ScriptStep(tool="check_balance"),
    ScriptStep(answer="Bought 4 classifier calls; a larger purchase was refused by the mandate."),
]
"""What the offline model does by default: a purchase within the mandate, then one beyond it."""


class AssistantsSection(BaseModel):
    """The assistants of a scenario (amounts in AGT base units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assistants: int = Field(default=1, ge=1, le=100)
    funding: int = Field(default=AGT, gt=0)
    budget: int = Field(default=10**17, gt=0)
    """The mandate's total budget (below `funding`: the mandate, not the balance, is the limit)."""
    per_call_cap: int = Field(default=12 * 10**15, gt=0)
    per_counterparty_cap: int = Field(default=10**17, gt=0)
    task: str = "Buy a few classifier calls from the cheapest honest seller, within my mandate."
    script: list[ScriptStep] = DEFAULT_SCRIPT


class AssistantsMarket(Market):
    """LLM-driven buyers bounded by mandates (see module docstring)."""

    name: ClassVar[str] = "assistants"
    section: ClassVar[type[BaseModel]] = AssistantsSection

    def participants(self, section: AssistantsSection, seed: int) -> list[Participant]:
        """One funded assistant per `assistants`, each with its mandate and script."""
        options = {
            "budget": section.budget,
            "per_call_cap": section.per_call_cap,
            "per_counterparty_cap": section.per_counterparty_cap,
            "script": [step.model_dump() for step in section.script],
            "seed": seed,
        }
        return [
            Participant(
                name=f"assistant-{i + 1}",
                role=assistant.ROLE,
                factory="agents.roles.assistant:build",
                funding=section.funding,
                options=options,
            )
            for i in range(section.assistants)
        ]

    def phases(self, section: AssistantsSection) -> list[Phase]:
        """assistants (trade) → assistant refunds (after deadlines)."""

        async def assistants(ctx: EconomyContext) -> None:
            record = ctx.ledger.sections.setdefault(self.name, {})
            names = ctx.names(assistant.ROLE)
            for i, name in enumerate(names):
                done = await ctx.call(name, assistant.RUN_TASK, Task(text=section.task), wait=300)
                report = await ctx.call(name, assistant.TOOL_REPORT, Empty())
                record[name] = {
                    "answer": done.answer,
                    "steps": done.steps,
                    "budget": report.budget,
                    "spent": report.spent,
                    "calls": [{"tool": c.tool, "args": c.args, "ok": c.ok, "result": c.result} for c in report.calls],
                }
                ctx.ledger.flows["assistants→sellers (inference)"] += report.spent
                ctx.progress("assistants", i + 1, len(names))

        async def refunds(ctx: EconomyContext) -> None:
            for name in ctx.names(assistant.ROLE):
                for amount in (await ctx.call(name, user.REFUND_CHANNELS, Empty())).amounts:
                    reason = "unspent deposit after expiry"
                    ctx.ledger.refunds.append(Refund(kind="channel", payer=name, amount=amount, reason=reason))

        return [Phase("assistants", "trade", assistants), Phase("assistant refunds", "after-deadlines", refunds)]

    def summary(self, data: dict[str, object]) -> list[tuple[str, str]]:
        """Each assistant's spend against its mandate."""
        rows = []
        for name, run in data.items():
            if isinstance(run, dict):
                rows.append((f"{name} spent / mandate (AGT)", f"{run['spent'] / AGT:.4f} / {run['budget'] / AGT:.4f}"))
        return rows

    def labels(self) -> dict[str, str]:
        """Progress-bar labels."""
        return {"assistants": "LLM assistants shopping"}


MARKET = AssistantsMarket()
"""The instance registered under the `agora.markets` entry point `assistants`."""
