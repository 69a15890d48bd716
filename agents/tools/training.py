"""LangChain tools for a training client (the advertiser): find sellers that fine-tune, fund a fine-tuning job in
escrow, have it trained and graded, follow its jobs, and take back budgets nobody earned after the deadline.

Spending goes through the escrow client, which checks the agreed price against the user's mandate (job kind
`training`) before any transaction. Sellers are named by their registry card, never by an address the model
writes. Results are readable; errors are `error[<code>]: ...` with no side effect.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from agents.base import AgoraAgent
from agents.capabilities.escrow import EscrowClient, TrainingPlan
from agents.settlement import MILLIONTHS
from agents.tools.base import NoArguments, Toolkit, ToolRefused
from marketplace.chain import JobStatus
from marketplace.registry.models import AgentEntry

MAX_EPOCHS = 20
MIN_TTL, MAX_TTL = 600, 30 * 86_400
"""A job's deadline lies this far ahead (s): long enough to train and grade, short enough to get refunds."""


class FindTrainers(BaseModel):
    """Find sellers that fine-tune a model."""

    model_config = ConfigDict(extra="forbid")

    base_model_id: str | None = Field(default=None, max_length=64, description="Only sellers fine-tuning this model.")


class FundTraining(BaseModel):
    """Negotiate a fine-tune with a seller and fund it in escrow; paid only if graded at `min_score` or better."""

    model_config = ConfigDict(extra="forbid")

    seller: str = Field(min_length=1, max_length=64, description="The seller's name, as find_trainers lists it.")
    base_model_id: str = Field(min_length=1, max_length=64, description="The model to fine-tune.")
    catalogue: int = Field(ge=0, le=10_000, description="Which slice of this client's catalogue to train on.")
    budget: int = Field(gt=0, description="Most to pay for the job, in token base units.")
    epochs: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    min_score: int = Field(ge=0, le=MILLIONTHS, description="Least held-out score (millionths) to pay for.")
    ttl: int = Field(default=1_800, ge=MIN_TTL, le=MAX_TTL, description="Seconds until the job's deadline.")


class EscrowJob(BaseModel):
    """One escrow job of this client."""

    model_config = ConfigDict(extra="forbid")

    escrow_job_id: int = Field(gt=0)


class TrainingToolkit(Toolkit):
    """The training client's tools over its escrow client (and so its mandate, when it has one)."""

    def __init__(self, agent: AgoraAgent, client: EscrowClient) -> None:
        super().__init__(agent, client.guard)
        self.client = client

    def tools(self) -> list[BaseTool]:
        """find_trainers, fund_training, deliver_training, training_jobs, reclaim_expired_training, check_balance."""
        return [
            self.tool("find_trainers", FindTrainers, self._find, "Sellers that fine-tune models, and their prices."),
            self.tool(
                "fund_training",
                FundTraining,
                self._fund,
                "Negotiate a fine-tune with a seller and fund it in escrow (the user's mandate is enforced).",
            ),
            self.tool("deliver_training", EscrowJob, self._deliver, "Have a funded job trained and graded."),
            self.tool("training_jobs", NoArguments, self._jobs, "This client's escrow jobs and their state."),
            self.tool(
                "reclaim_expired_training", NoArguments, self._reclaim, "Take back budgets of jobs past their deadline."
            ),
            self.tool("check_balance", NoArguments, self._balance, "Token balance and what the mandate leaves."),
        ]

    async def _trainers(self) -> list[AgentEntry]:
        return [
            entry
            async for entry in self.client.settlement.cards()
            if any(o.job_kind == "training" for o in entry.card.offerings)
        ]

    async def _find(self, args: BaseModel) -> str:
        assert isinstance(args, FindTrainers)
        lines = []
        for entry in await self._trainers():
            for offer in entry.card.offerings:
                if offer.job_kind == "training" and args.base_model_id in (None, offer.model_id):
                    lines.append(f"{entry.card.name} fine-tunes {offer.model_id} at {offer.price_per_unit} per job")
        return "\n".join(lines) if lines else "no seller fine-tunes that"

    async def _fund(self, args: BaseModel) -> str:
        assert isinstance(args, FundTraining)
        named = [e for e in await self._trainers() if e.card.name == args.seller]
        if not named:
            raise ToolRefused("not_found", f"no seller named {args.seller!r} fine-tunes models")
        plan = TrainingPlan(
            base_model_id=args.base_model_id, catalogue=args.catalogue, opening=args.budget // 2, budget=args.budget,
            epochs=args.epochs, ttl=args.ttl, min_score=args.min_score,
        )  # fmt: skip
        outcome = await self.client.fund(named[0], plan)
        if outcome.state != "funded":
            return f"no deal: {args.seller} would not fine-tune {args.base_model_id} for {args.budget} or less"
        return f"funded escrow job {outcome.escrow_job_id} with {args.seller} for {outcome.price}{self._left()}"

    def _left(self) -> str:
        return f"; {self.guard.remaining()} left in the mandate" if self.guard is not None else ""

    async def _deliver(self, args: BaseModel) -> str:
        assert isinstance(args, EscrowJob)
        if self.client.jobs.get(str(args.escrow_job_id)) is None:
            raise ToolRefused("not_found", f"escrow job {args.escrow_job_id} was not funded by this agent")
        outcome = await self.client.deliver(args.escrow_job_id)
        received = ", weights received" if outcome.received else ""
        return f"escrow job {args.escrow_job_id}: {outcome.state}, score {outcome.score}{received}"

    async def _jobs(self, _: BaseModel) -> str:
        lines = []
        for job_id, job in self.client.jobs.items():
            on_chain = await self.client.settlement.escrow.get_job(int(job_id))
            lines.append(
                f"escrow job {job_id}: fine-tune {job.plan.base_model_id} for {job.price}, "
                f"{JobStatus(on_chain.status).name.lower()} on chain, deadline {on_chain.deadline}"
            )
        return "\n".join(lines) if lines else "no training jobs"

    async def _reclaim(self, _: BaseModel) -> str:
        refunds = await self.client.reclaim_expired()
        if not refunds:
            return "nothing to reclaim"
        return f"reclaimed {sum(r.refunded for r in refunds)} from {len(refunds)} job(s)"

    async def _balance(self, _: BaseModel) -> str:
        settlement = self.client.settlement
        balance = await settlement.token.balance_of(settlement.account)
        if self.guard is None:
            return f"balance {balance} base units (no mandate)"
        spent, terms = self.guard.spent(), self.guard.terms
        return (
            f"balance {balance} base units; mandate {terms.mandate_id}: spent {spent.total} of "
            f"{terms.total_budget}, {self.guard.remaining()} left"
        )
