"""The validator: re-executes audited calls, disputes wrong attestations, votes, and grades training jobs.

It is paid evaluator fees by JobEscrow and rewarded from slashed stake when it wins a dispute; it is
slashed itself if the dispute goes against what it attested. Composition: re-executor + dispute voter +
evaluator + control.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Empty
from agents.capabilities.kit import compose
from agents.capabilities.validation import DisputeVoter, Evaluator, Recomputer, ReExecutor
from agents.roles.base import RoleOptions, role_parts
from agents.settings import AgentSettings

ROLE = "validator"


class Resolution(BaseModel):
    """A resolved dispute: how many stakers were slashed, the slashed total and the treasury's share."""

    slashes: int
    slashed: int
    to_treasury: int


class Resolutions(BaseModel):
    """Disputes this validator resolved."""

    resolved: list[Resolution]


RESOLVE_DISPUTES = Command("resolve_disputes", Empty, Resolutions)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A validator built from plain options (see RoleOptions; `voters`: how many others it asks to vote)."""
    opts = RoleOptions.model_validate(options)
    parts = role_parts(ROLE, settings, deps, opts)
    agent, settlement = parts.agent, parts.settlement
    recomputer = Recomputer(settlement)
    reexecutor = ReExecutor(agent, settlement, recomputer, voters=int(options.get("voters", 2)))
    voter = DisputeVoter(agent, settlement, recomputer)
    evaluator = Evaluator(agent, settlement)

    async def resolve(_: Empty) -> Resolutions:
        done = await reexecutor.resolve_disputes()
        return Resolutions(
            resolved=[Resolution(slashes=len(r.slashes), slashed=r.slashed, to_treasury=r.to_treasury) for r in done]
        )

    parts.control.handle(RESOLVE_DISPUTES, resolve)
    return compose(agent, parts.control, reexecutor, voter, evaluator)
