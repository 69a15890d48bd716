"""The validator: re-executes audited calls, disputes wrong attestations, votes, grades training jobs and
aggregates federated jobs.

It is paid evaluator fees by JobEscrow and rewarded from slashed stake when it wins a dispute; it is slashed
itself if the dispute goes against what it attested. Composition: re-executor + dispute voter + evaluator +
federated aggregator + control.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Empty
from agents.capabilities.federated.aggregator import FederatedAggregator, JobReport
from agents.capabilities.kit import compose
from agents.capabilities.validation import DisputeVoter, Evaluator, Recomputer, ReExecutor
from agents.roles.base import RoleOptions, role_parts
from agents.settings import AgentSettings
from marketplace.chain.staking import Committee, DisputeResolved

ROLE = "validator"


class Seat(BaseModel):
    """A committee member (settlement account), its voting weight and its ballot (absent, supports, opposes)."""

    member: str
    weight: int
    ballot: str


class Resolution(BaseModel):
    """A resolved dispute: its committee, whether it was decided, who was slashed and where the stake went."""

    dispute_id: int
    decided: bool
    upheld: bool
    committee: list[Seat]
    slashed_accounts: list[str]
    slashes: int
    slashed: int
    to_treasury: int


class Resolutions(BaseModel):
    """Disputes this validator resolved."""

    resolved: list[Resolution]


class JobId(BaseModel):
    """A FederatedRewards job id."""

    job_id: int


RESOLVE_DISPUTES = Command("resolve_disputes", Empty, Resolutions)
RUN_FEDERATED = Command("run_federated", JobId, JobReport)


def _resolution(resolved: DisputeResolved, committee: Committee) -> Resolution:
    seats = [Seat(member=s.member, weight=s.weight, ballot=s.ballot.name.lower()) for s in committee.seats]
    return Resolution(
        dispute_id=resolved.dispute_id,
        decided=resolved.decided,
        upheld=resolved.upheld,
        committee=seats,
        slashed_accounts=[s.validator for s in resolved.slashes],
        slashes=len(resolved.slashes),
        slashed=resolved.slashed,
        to_treasury=resolved.to_treasury,
    )


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A validator built from plain options (see RoleOptions; `voters`: how many others it asks to vote)."""
    opts = RoleOptions.model_validate(options)
    parts = role_parts(ROLE, settings, deps, opts)
    agent, settlement = parts.agent, parts.settlement
    recomputer = Recomputer(agent, settlement)
    reexecutor = ReExecutor(agent, settlement, recomputer, voters=int(options.get("voters", 2)))
    voter = DisputeVoter(agent, settlement, recomputer)
    evaluator = Evaluator(agent, settlement)
    aggregator = FederatedAggregator(agent, settlement, neighbours=options.get("neighbours"))

    async def resolve(_: Empty) -> Resolutions:
        done = await reexecutor.resolve_disputes()
        return Resolutions(resolved=[_resolution(r, committee) for r, committee in done])

    async def run_federated(args: JobId) -> JobReport:
        return await aggregator.run(args.job_id)

    parts.control.handle(RESOLVE_DISPUTES, resolve)
    parts.control.handle(RUN_FEDERATED, run_federated)
    return compose(agent, parts.control, reexecutor, voter, evaluator, aggregator)
