"""LangChain tools for a validator: its stake, its pending work (disputes it opened, evaluations it holds terms
for, federated jobs it aggregates), resolving its disputes once their window closed, and unstaking.

Tools call the validator's capabilities (re-executor, evaluator, aggregator) and its staking client; an action
the chain would refuse now (a dispute still open to votes, more unstaking than is staked, a withdrawal before
release) is refused first, with no transaction. Results are readable; errors are `error[<code>]: ...`.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from agents.base import AgoraAgent
from agents.capabilities.federated.aggregator import FederatedAggregator
from agents.capabilities.validation import Evaluator, ReExecutor
from agents.settlement import Settlement
from agents.tools.base import NoArguments, Toolkit, ToolRefused


class Unstake(BaseModel):
    """Move part of the active stake into unbonding (withdrawable after the release time)."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, description="How much active stake to unbond, in token base units.")


class ValidatorToolkit(Toolkit):
    """The validator's tools over its staking, re-executor, evaluator and (optionally) federated aggregator."""

    def __init__(
        self,
        agent: AgoraAgent,
        settlement: Settlement,
        reexecutor: ReExecutor | None = None,
        evaluator: Evaluator | None = None,
        aggregator: FederatedAggregator | None = None,
    ) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.reexecutor = reexecutor
        self.evaluator = evaluator
        self.aggregator = aggregator

    def tools(self) -> list[BaseTool]:
        """check_stake, pending_work, resolve_disputes, request_unstake, withdraw_stake."""
        return [
            self.tool("check_stake", NoArguments, self._stake, "Active and unbonding stake, and the minimum."),
            self.tool(
                "pending_work", NoArguments, self._pending, "Validations, disputes, evaluations, federated jobs."
            ),
            self.tool(
                "resolve_disputes",
                NoArguments,
                self._resolve,
                "Resolve the disputes this validator opened, once voting closed (winners take slashed stake).",
            ),
            self.tool("request_unstake", Unstake, self._unstake, "Unbond part of the active stake."),
            self.tool("withdraw_stake", NoArguments, self._withdraw, "Withdraw stake whose unbonding has ended."),
        ]

    async def _stake(self, _: BaseModel) -> str:
        staking = self.settlement.staking
        info = await staking.stake_of(self.settlement.account)
        minimum = await staking.min_stake()
        release = f", releasable at {info.release_at}" if info.unbonding else ""
        return f"active stake {info.active}, unbonding {info.unbonding}{release}; minimum to validate {minimum}"

    async def _pending(self, _: BaseModel) -> str:
        lines = []
        if self.reexecutor is not None:
            validations = self.reexecutor.validations.values()
            invalid = sum(1 for v in validations if not v.valid)
            lines.append(f"{len(validations)} call(s) re-executed and attested, {invalid} found wrong")
            now = await self.settlement.chain_time()
            for dispute_id, _ in self.reexecutor.disputes.items():
                dispute = await self.settlement.staking.dispute_of(int(dispute_id))
                when = "resolvable now" if now >= dispute.deadline else f"voting until {dispute.deadline}"
                lines.append(f"dispute {dispute_id} against {dispute.accused}: {when}")
        if self.evaluator is not None:
            waiting = [job for job, _ in self.evaluator.terms.items() if self.evaluator.grades.get(job) is None]
            graded = self.evaluator.grades.values()
            fees = sum(g.fee for g in graded)
            lines.append(
                f"evaluations: {len(waiting)} awaiting a deliverable ({', '.join(waiting) or 'none'}), "
                f"{len(graded)} graded for {fees} in fees"
            )
        if self.aggregator is not None:
            for job_id, _ in self.aggregator.assignments.items():
                progress = self.aggregator.progress.get(job_id)
                rounds = len(progress.report.get("rounds", [])) if progress is not None else 0
                lines.append(f"federated job {job_id}: {rounds} round(s) run")
        return "\n".join(lines) if lines else "no pending work"

    async def _resolve(self, _: BaseModel) -> str:
        if self.reexecutor is None:
            raise ToolRefused("unsupported", "this agent does not open disputes")
        now = await self.settlement.chain_time()
        for dispute_id, _ in self.reexecutor.disputes.items():
            deadline = (await self.settlement.staking.dispute_of(int(dispute_id))).deadline
            if now < deadline:
                raise ToolRefused("too_early", f"dispute {dispute_id} takes votes until {deadline} (now {now})")
        resolved = await self.reexecutor.resolve_disputes()
        if not resolved:
            return "no disputes to resolve"
        return "\n".join(
            f"dispute {r.dispute_id}: " + ("accused upheld" if r.upheld else "accused lost")
            + (f", {r.slashed} slashed from {len(r.slashes)} staker(s)" if r.decided else ", no quorum: nobody slashed")
            for r, _ in resolved
        )  # fmt: skip

    async def _unstake(self, args: BaseModel) -> str:
        assert isinstance(args, Unstake)
        staking = self.settlement.staking
        info = await staking.stake_of(self.settlement.account)
        if args.amount > info.active:
            raise ToolRefused("out_of_bounds", f"{args.amount} exceeds the active stake of {info.active}")
        release_at = await staking.request_unstake(args.amount)
        return f"unbonding {args.amount}; withdrawable at {release_at}"

    async def _withdraw(self, _: BaseModel) -> str:
        staking = self.settlement.staking
        info = await staking.stake_of(self.settlement.account)
        if info.unbonding == 0:
            raise ToolRefused("nothing_unbonding", "no stake is unbonding")
        now = await self.settlement.chain_time()
        if now < info.release_at:
            raise ToolRefused("too_early", f"unbonding stake is released at {info.release_at} (now {now})")
        amount = await staking.withdraw()
        return f"withdrew {amount}"
