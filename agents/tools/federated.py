"""LangChain tools for federated learning: a user's side (take part or not, its privacy budget, the jobs it
joined, claiming its rewards) and a sponsor's view of the jobs it funded (and taking back what nobody earned).

A user joins a job when the job's aggregator invites it; the federated client then refuses any round its
privacy budget cannot pay for, whatever a tool or a model asked. Opting in with the budget already spent is
refused here too. The choice holds until the agent restarts (its role options decide again then).
Results are readable; errors are `error[<code>]: ...` with no side effect.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from agents.base import AgoraAgent
from agents.capabilities.federated.client import FederatedClient
from agents.capabilities.federated.plan import participation
from agents.capabilities.federated.sponsor import FederatedSponsor
from agents.state import key
from agents.tools.base import NoArguments, Toolkit, ToolRefused
from protocols.federated import FederatedPlan


class TakePart(BaseModel):
    """Whether this user accepts invitations to federated jobs (it never trains past its privacy budget)."""

    model_config = ConfigDict(extra="forbid")

    take_part: bool = Field(description="true: accept invitations from jobs' aggregators; false: refuse them.")


class FederatedUserToolkit(Toolkit):
    """A user's federated tools over its federated client."""

    def __init__(self, agent: AgoraAgent, learner: FederatedClient) -> None:
        super().__init__(agent)
        self.learner = learner

    def tools(self) -> list[BaseTool]:
        """take_part_in_federated, privacy_budget, federated_jobs, claim_rewards."""
        return [
            self.tool(
                "take_part_in_federated",
                TakePart,
                self._take_part,
                "Accept (or refuse) invitations to train federated jobs on this user's own history.",
            ),
            self.tool("privacy_budget", NoArguments, self._privacy, "Privacy (epsilon) spent and what is left."),
            self.tool("federated_jobs", NoArguments, self._jobs, "Jobs joined, rounds trained, rewards earned."),
            self.tool("claim_rewards", NoArguments, self._claim, "Claim every unclaimed federated reward."),
        ]

    def _left(self) -> float:
        return self.learner.options.epsilon_budget - self.learner.epsilon_spent()

    async def _take_part(self, args: BaseModel) -> str:
        assert isinstance(args, TakePart)
        options = self.learner.options
        if args.take_part and self._left() <= 0:
            raise ToolRefused("privacy_budget", f"epsilon budget {options.epsilon_budget:.2f} is spent")
        options.enabled = args.take_part
        if not args.take_part:
            return "refusing federated invitations from now on"
        return f"accepting federated invitations; epsilon {self._left():.2f} of {options.epsilon_budget:.2f} left"

    async def _privacy(self, _: BaseModel) -> str:
        options, ledger = self.learner.options, self.learner.ledger()
        lines = [
            f"epsilon spent {self.learner.epsilon_spent():.2f} of {options.epsilon_budget:.2f}; "
            f"least noise multiplier accepted {options.min_noise_multiplier}"
        ]
        records = len(self.learner.history)
        for job_id, joined in self.learner.memberships.items():
            plan = FederatedPlan.parse_obj(joined.plan)
            upcoming = [r for r in range(1, plan.rounds + 1) if self.learner.trained.get(key(int(job_id), r)) is None]
            if not upcoming:
                continue
            cost = participation(plan, int(job_id), upcoming[0], records)
            fits = not ledger.would_exceed(self.learner.user, cost, options.epsilon_budget)
            lines.append(f"job {job_id} round {upcoming[0]}: " + ("fits the budget" if fits else "would be refused"))
        return "\n".join(lines)

    async def _jobs(self, _: BaseModel) -> str:
        lines = []
        for job_id, joined in self.learner.memberships.items():
            plan = FederatedPlan.parse_obj(joined.plan)
            trained = [r for r in range(1, plan.rounds + 1) if self.learner.trained.get(key(int(job_id), r))]
            lines.append(f"job {job_id} ({plan.model_id}, {plan.rounds} rounds): trained rounds {trained or 'none'}")
        rewards = self.learner.rewards.values()
        unclaimed = sum(r.amount for r in rewards if not r.claimed)
        claimed = sum(r.amount for r in rewards if r.claimed)
        lines.append(f"rewards: {claimed} claimed, {unclaimed} to claim")
        return "\n".join(lines)

    async def _claim(self, _: BaseModel) -> str:
        amounts = await self.learner.claim()
        if not amounts:
            return "no rewards to claim"
        return f"claimed {sum(amounts)} for {len(amounts)} round(s)"


class FederatedSponsorToolkit(Toolkit):
    """A sponsor's view of the federated jobs it funded, and the refund of what nobody earned."""

    def __init__(self, agent: AgoraAgent, sponsor: FederatedSponsor) -> None:
        super().__init__(agent)
        self.sponsor = sponsor

    def tools(self) -> list[BaseTool]:
        """sponsored_jobs, reclaim_federated_budget."""
        return [
            self.tool("sponsored_jobs", NoArguments, self._jobs, "Federated jobs this agent funded and their state."),
            self.tool(
                "reclaim_federated_budget",
                NoArguments,
                self._reclaim,
                "Take back, after the claim window, rewards nobody earned or claimed.",
            ),
        ]

    async def _jobs(self, _: BaseModel) -> str:
        lines = []
        for job_id, sponsored in self.sponsor.jobs.items():
            job = await self.sponsor.settlement.federated.get_job(int(job_id))
            lines.append(
                f"job {job_id}: model {sponsored.model_id}, latest version {sponsored.latest}; budget {job.budget}, "
                f"{job.posted} earned by users, {job.claimed} claimed, {job.refunded} refunded; rounds until "
                f"{job.deadline}, claims until {job.claim_deadline}"
            )
        return "\n".join(lines) if lines else "no federated jobs sponsored"

    async def _reclaim(self, _: BaseModel) -> str:
        refunds = await self.sponsor.refund()
        if not refunds:
            return "nothing to reclaim (no job is past its claim window with budget left)"
        return f"reclaimed {sum(r.amount for r in refunds)} from {len(refunds)} job(s)"
