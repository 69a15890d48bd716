"""What every role's LangChain toolkit shares: typed tools whose failures are one-line `error[<code>]: ...` results,
and a transcript of every call in the agent's store.

A tool validates its (pydantic) arguments before anything happens; a refused or failed action raises and so
records nothing but the transcript entry. Tools never take or return key material.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.mandate import MandateExceeded, MandateGuard
from agents.mods import Rejected
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain import ContractRevert


class ToolCallRecord(Record):
    """One tool call as the transcript keeps it: which tool, its arguments, whether it worked, what it said."""

    seq: int
    tool: str
    args: dict[str, object]
    ok: bool
    result: str
    at: float


class Transcript:
    """Every tool call of an agent and its outcome, in order, in the agent's store (it survives restarts).

    Every toolkit of one agent writes to the same transcript, so a role's calls read in the order they happened.
    """

    def __init__(self, agent: AgoraAgent) -> None:
        self._agent = agent
        self._calls = Repository(agent.store, "tools.transcript", ToolCallRecord)

    def log(self, tool: str, args: dict[str, object], ok: bool, result: str) -> ToolCallRecord:
        """Append one call; the stored record."""
        seq = len(self._calls)
        record = ToolCallRecord(seq=seq, tool=tool, args=args, ok=ok, result=result, at=self._agent.clock.now())
        self._calls.put(f"{seq:08d}", record)
        return record

    def entries(self) -> list[ToolCallRecord]:
        """Every call so far, oldest first."""
        return self._calls.values()


class ToolReport(BaseModel):
    """What a report shows of an LLM-driven agent: its tool calls and its spend against its mandate."""

    calls: list[ToolCallRecord]
    mandate_id: str | None = None
    budget: int | None = None
    spent: int = 0
    spent_by_counterparty: dict[str, int] = {}


def tool_report(transcript: Transcript, guard: MandateGuard | None) -> ToolReport:
    """The transcript, and the spend against the mandate when there is one."""
    if guard is None:
        return ToolReport(calls=transcript.entries())
    spent = guard.spent()
    return ToolReport(
        calls=transcript.entries(),
        mandate_id=guard.terms.mandate_id,
        budget=guard.terms.total_budget,
        spent=spent.total,
        spent_by_counterparty=spent.by_counterparty,
    )


class NoArguments(BaseModel):
    """This tool takes no arguments."""

    model_config = ConfigDict(extra="forbid")


class ToolRefused(Exception):
    """An action a tool declines before doing anything: `code` names why (e.g. out_of_bounds, not_found)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


Action = Callable[[BaseModel], Awaitable[str]]


class StrictTool(StructuredTool):
    """A StructuredTool that validates its input even when its schema has no fields.

    LangChain skips validation for a tool without arguments and drops whatever was passed; here a call with
    arguments it does not take (`claim_payments(to="0x…")`) is invalid, not quietly run without them.
    """

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        schema = self.args_schema
        if isinstance(tool_input, dict) and isinstance(schema, type) and issubclass(schema, BaseModel):
            schema.model_validate(tool_input)
        return super()._to_args_and_kwargs(tool_input, tool_call_id)


FAILURES: tuple[type[Exception], ...] = (
    LookupError,
    ValueError,
    RuntimeError,
    ContractRevert,
    RemoteError,
    DeliveryError,
    TimeoutError,
    Rejected,
)
"""What a capability raises when an action fails; a tool reports it as `error[failed]` instead of raising."""


class Toolkit(ABC):
    """A set of tools over one agent's capabilities, logging every call to the agent's transcript."""

    def __init__(self, agent: AgoraAgent, guard: MandateGuard | None = None) -> None:
        self.agent = agent
        self.guard = guard
        self.transcript = Transcript(agent)

    @abstractmethod
    def tools(self) -> list[BaseTool]:
        """The toolkit's tools (each subclass lists its own)."""

    def report(self) -> ToolReport:
        """The transcript and the spend against the mandate (for an operator command or the economy report)."""
        return tool_report(self.transcript, self.guard)

    def tool(self, name: str, schema: type[BaseModel], action: Action, description: str) -> BaseTool:
        """A StructuredTool running `action` on arguments validated by `schema`; errors come back as results."""

        async def run(**kwargs: object) -> str:
            try:
                args = schema.model_validate(kwargs)
            except ValidationError as exc:
                return self.refuse(name, kwargs, "invalid_arguments", first_error(exc))
            try:
                result = await action(args)
            except MandateExceeded as exc:
                return self.refuse(name, kwargs, "mandate_exceeded", str(exc))
            except ToolRefused as exc:
                return self.refuse(name, kwargs, exc.code, exc.reason)
            except FAILURES as exc:
                return self.refuse(name, kwargs, "failed", f"{type(exc).__name__}: {exc}")
            self.transcript.log(name, dict(kwargs), True, result)
            return result

        def invalid(exc: ValidationError) -> str:
            return self.refuse(name, {}, "invalid_arguments", first_error(exc))

        return StrictTool.from_function(
            coroutine=run, name=name, description=description, args_schema=schema, handle_validation_error=invalid
        )

    def refuse(self, tool: str, args: dict[str, object], code: str, reason: str) -> str:
        """Log a refused call and return its one-line typed error."""
        message = f"error[{code}]: {' '.join(reason.split())}"
        self.transcript.log(tool, dict(args), False, message)
        return message


def first_error(exc: ValidationError) -> str:
    """The first validation error of `exc` as `field: message`."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    return f"{where}: {error['msg']}"
