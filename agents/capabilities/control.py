"""Operator control: named, typed commands an agent obeys only from its operators (e.g. the economy runner).

A command is declared once (`Command(name, Args, Result)`) and used at both ends: the agent registers a
handler with `control.handle(command, handler)`, the operator calls `await call(operator, agent_address,
command, args)`. Arguments and results cross process and host boundaries as JSON, typed by pydantic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from uagents import Context

from agents.base import AgoraAgent
from agents.capabilities.kit import Capability, Handlers
from agents.mods import Rejected
from protocols import control
from protocols.control import ControlCommand, ControlResult
from protocols.errors import ErrorCode

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Command(Generic[A, R]):
    """A control command: its name, argument model and result model."""

    name: str
    args: type[A]
    result: type[R]


class Empty(BaseModel):
    """No arguments, or no result."""


class Control(Capability):
    """Dispatches ControlCommand messages from the operator addresses to registered handlers."""

    def __init__(self, agent: AgoraAgent, operators: Iterable[str]) -> None:
        super().__init__(agent)
        self.operators = frozenset(operators)
        self._handlers: dict[str, tuple[Command[Any, Any], Callable[[Any], Awaitable[Any]]]] = {}

    def handle(self, command: Command[A, R], handler: Callable[[A], Awaitable[R]]) -> None:
        """Run `handler` for `command` (one handler per command name)."""
        if command.name in self._handlers:
            raise ValueError(f"control command {command.name!r} already has a handler")
        self._handlers[command.name] = (command, handler)

    @property
    def commands(self) -> list[str]:
        """The command names this agent obeys."""
        return sorted(self._handlers)

    def handlers(self) -> Iterable[Handlers]:
        """The control protocol (agent side)."""
        return (Handlers(control.SPEC, "agent", {ControlCommand: self._on_command}),)

    async def _on_command(self, ctx: Context, sender: str, msg: ControlCommand) -> None:
        if sender not in self.operators:
            raise Rejected(ErrorCode.UNAUTHORIZED, "only this agent's operators may send control commands")
        found = self._handlers.get(msg.command)
        if found is None:
            raise Rejected(ErrorCode.REJECTED, f"unknown command {msg.command!r} (known: {', '.join(self.commands)})")
        command, handler = found
        try:
            args = command.args.model_validate_json(msg.arguments)
        except ValidationError as exc:
            raise Rejected(ErrorCode.MALFORMED, f"{msg.command}: {exc.error_count()} invalid argument(s)") from exc
        result = await handler(args)
        await ctx.send(sender, ControlResult(command=msg.command, result=result.model_dump_json()))


async def call(operator: AgoraAgent, agent: str, command: Command[A, R], args: A, *, wait: float = 120.0) -> R:
    """Send `command` to `agent` as `operator` and return its typed result (RemoteError if refused)."""
    message = ControlCommand(command=command.name, arguments=args.model_dump_json())
    reply = await operator.request(agent, message, ControlResult, wait=wait)
    return command.result.model_validate_json(reply.result)
