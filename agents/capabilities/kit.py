"""What every capability is built with, and `compose`, which turns a list of capabilities into an agent's protocols.

A capability contributes handlers for messages of one role of a protocol spec. Several capabilities may
serve the same role (a seller's inference and training handlers both belong to the `agora-jobs` seller
role): `compose` merges them into one spec-locked uAgents protocol per (spec, role), and answers the
role's remaining messages with a typed refusal, so an agent never advertises a message it cannot handle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from uagents import Context, Model, Protocol
from uagents_core.protocol import ProtocolSpecification

from agents.base import AgoraAgent
from agents.mods import Rejected
from protocols.errors import ErrorCode

Handler = Callable[[Context, str, Any], Awaitable[None]]


@dataclass(frozen=True)
class Handlers:
    """Handlers a capability contributes to one role of one protocol spec."""

    spec: ProtocolSpecification
    role: str
    handlers: dict[type[Model], Handler]


def spec_protocol(spec: ProtocolSpecification, role: str, handlers: dict[type[Model], Handler]) -> Protocol:
    """A protocol for one role of `spec`, handling each message of that role with the given handler."""
    protocol = Protocol(spec=spec, role=role)
    for model, handler in handlers.items():
        # uAgents 0.26.1 compares a set with a dict when replies are passed to a locked protocol (always
        # "mismatch"), and passing None blanks the declared replies; so register, then restore them.
        protocol.on_message(model)(handler)
        protocol.replies[Model.build_schema_digest(model)] = {
            Model.build_schema_digest(reply): reply for reply in spec.interactions[model]
        }
    return protocol


class Capability:
    """A behaviour an agent takes on: message handlers (possibly none) plus state in typed repositories."""

    def __init__(self, agent: AgoraAgent) -> None:
        self.agent = agent

    def handlers(self) -> Iterable[Handlers]:
        """What this capability handles (nothing for purely outbound behaviour)."""
        return ()


def _not_offered(model: type[Model]) -> Handler:
    async def refuse(ctx: Context, sender: str, msg: Any) -> None:
        raise Rejected(ErrorCode.REJECTED, f"{model.__name__} is not handled by this agent")

    return refuse


_COMPOSED = "_agora_composed"
"""The agent attribute holding what `compose` gave it (on the agent, so it lives and dies with it)."""


def composed(agent: AgoraAgent) -> tuple[Capability, ...]:
    """The capabilities `compose` gave `agent`, in order (so tools and reports can find a role's capabilities)."""
    found: tuple[Capability, ...] = getattr(agent, _COMPOSED, ())
    return found


def compose(agent: AgoraAgent, *capabilities: Capability) -> AgoraAgent:
    """Include every capability's handlers into `agent`, one protocol per (spec, role), and return it."""
    merged: dict[tuple[str, str], tuple[ProtocolSpecification, dict[type[Model], Handler]]] = {}
    for capability in capabilities:
        if capability.agent is not agent:
            raise ValueError(f"{type(capability).__name__} was built for another agent")
        for part in capability.handlers():
            spec, table = merged.setdefault((part.spec.digest, part.role), (part.spec, {}))
            for model, handler in part.handlers.items():
                if model in table:
                    raise ValueError(f"two capabilities handle {model.__name__} ({part.spec.name}, {part.role})")
                table[model] = handler
    for (_, role), (spec, table) in merged.items():
        for model in (spec.roles or {}).get(role, set()):
            table.setdefault(model, _not_offered(model))
        agent.include(spec_protocol(spec, role, table))
    setattr(agent, _COMPOSED, (*composed(agent), *capabilities))
    return agent


class OnMessages(Capability):
    """A capability made of given handlers, for small roles that need one or two of their own."""

    def __init__(self, agent: AgoraAgent, spec: ProtocolSpecification, role: str, handlers: dict[type[Model], Handler]):
        super().__init__(agent)
        self._part = Handlers(spec, role, handlers)

    def handlers(self) -> Iterable[Handlers]:
        """The given handlers."""
        return (self._part,)
