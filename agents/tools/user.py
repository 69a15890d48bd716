"""LangChain tools for a user agent: find sellers, buy inference, check the balance and the open channels.

Tools take typed (pydantic) arguments and return readable strings. Spending goes through the agent's
InferenceClient and ChannelPayer, so the user's mandate (checked in the payer before any signature) applies
whatever the model asks. Bad arguments and refused actions come back as one-line `error[<code>]: ...`
strings, with no side effect; every call and its outcome is appended to a transcript in the agent's store.
No tool takes or returns key material, and no tool takes a payee address: sellers come from the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.inference import InferenceClient, InferencePlan
from agents.capabilities.mandate import MandateExceeded, MandateGuard
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain import ContractRevert
from marketplace.ml import ModelKind

MAX_CALLS_PER_PURCHASE = 100


class ToolCallRecord(Record):
    """One tool call as the transcript keeps it: which tool, its arguments, whether it worked, what it said."""

    seq: int
    tool: str
    args: dict[str, object]
    ok: bool
    result: str
    at: float


class Transcript:
    """Every tool call of an agent and its outcome, in order, in the agent's store (it survives restarts)."""

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


class ToolSettings(BaseModel):
    """How the user's tools buy: the channel lifetime (s) and the share of calls audited by a validator."""

    channel_ttl: int = Field(default=3_600, gt=0)
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)


class SearchSellers(BaseModel):
    """Find sellers offering inference on a model kind."""

    model_config = ConfigDict(extra="forbid")

    kind: ModelKind = Field(description="Model kind: `classifier` or `recommender`.")


class BuyInference(BaseModel):
    """Buy inference calls: negotiate with the cheapest sellers, open a channel, pay each call."""

    model_config = ConfigDict(extra="forbid")

    kind: ModelKind = Field(description="Model kind: `classifier` or `recommender`.")
    calls: int = Field(ge=1, le=MAX_CALLS_PER_PURCHASE, description="How many calls to buy.")
    max_per_call: int = Field(gt=0, description="Most to pay per call, in token base units.")


class NoArguments(BaseModel):
    """This tool takes no arguments."""

    model_config = ConfigDict(extra="forbid")


Action = Callable[[BaseModel], Awaitable[str]]


class UserToolkit:
    """The user's LangChain tools over its InferenceClient (and so its guarded ChannelPayer)."""

    def __init__(
        self,
        agent: AgoraAgent,
        client: InferenceClient,
        guard: MandateGuard | None = None,
        settings: ToolSettings | None = None,
    ) -> None:
        self.agent = agent
        self.client = client
        self.guard = guard
        self.settings = settings or ToolSettings()
        self.transcript = Transcript(agent)

    def report(self) -> ToolReport:
        """The transcript and the spend against the mandate (for an operator command or the economy report)."""
        if self.guard is None:
            return ToolReport(calls=self.transcript.entries())
        spent = self.guard.spent()
        return ToolReport(
            calls=self.transcript.entries(),
            mandate_id=self.guard.terms.mandate_id,
            budget=self.guard.terms.total_budget,
            spent=spent.total,
            spent_by_counterparty=spent.by_counterparty,
        )

    def tools(self) -> list[BaseTool]:
        """search_sellers, buy_inference, check_balance, list_channels."""
        return [
            self._tool("search_sellers", SearchSellers, self._search, "List sellers of inference on a model kind."),
            self._tool(
                "buy_inference",
                BuyInference,
                self._buy,
                "Buy inference calls on a model kind, paying at most max_per_call base units per call "
                "(the user's mandate is enforced).",
            ),
            self._tool("check_balance", NoArguments, self._balance, "Token balance and what the mandate leaves."),
            self._tool("list_channels", NoArguments, self._channels, "Payment channels this agent opened."),
        ]

    def _tool(self, name: str, schema: type[BaseModel], action: Action, description: str) -> BaseTool:
        async def run(**kwargs: object) -> str:
            try:
                args = schema.model_validate(kwargs)
            except ValidationError as exc:
                return self._refuse(name, kwargs, "invalid_arguments", _first_error(exc))
            try:
                result = await action(args)
            except MandateExceeded as exc:
                return self._refuse(name, kwargs, "mandate_exceeded", str(exc))
            except (LookupError, ValueError, ContractRevert, RemoteError, DeliveryError, TimeoutError) as exc:
                return self._refuse(name, kwargs, "failed", f"{type(exc).__name__}: {exc}")
            self.transcript.log(name, dict(kwargs), True, result)
            return result

        def invalid(exc: ValidationError) -> str:
            return self._refuse(name, {}, "invalid_arguments", _first_error(exc))

        return StructuredTool.from_function(
            coroutine=run, name=name, description=description, args_schema=schema, handle_validation_error=invalid
        )

    def _refuse(self, tool: str, args: dict[str, object], code: str, reason: str) -> str:
        message = f"error[{code}]: {reason}"
        self.transcript.log(tool, dict(args), False, message)
        return message

    async def _search(self, args: BaseModel) -> str:
        assert isinstance(args, SearchSellers)
        found = await self.client.candidates(args.kind, set())
        if not found:
            return f"no seller offers {args.kind} inference"
        lines = []
        for address, (entry, model_id) in sorted(found.items()):
            prices = [o.price_per_unit for o in entry.card.offerings if o.model_id == model_id]
            lines.append(f"{entry.card.name or address[:16]} sells {model_id} at {min(prices)} per call")
        return "\n".join(lines)

    async def _buy(self, args: BaseModel) -> str:
        assert isinstance(args, BuyInference)
        plan = InferencePlan(
            kind=args.kind,
            calls=args.calls,
            opening_per_call=args.max_per_call // 2,
            max_per_call=args.max_per_call,
            deposit=args.max_per_call * args.calls,
            sample_rate=self.settings.sample_rate,
            channel_ttl=self.settings.channel_ttl,
        )
        outcome = await self.client.buy(plan)
        if outcome.paid_calls == 0:
            return f"bought nothing: no seller sold {args.kind} inference within {args.max_per_call} per call"
        prices = ", ".join(str(p) for p in outcome.negotiated_prices)
        left = f"; {self.guard.remaining()} left in the mandate" if self.guard is not None else ""
        return (
            f"bought {outcome.paid_calls} of {args.calls} {args.kind} calls for {outcome.spent} "
            f"(negotiated per call: {prices}){left}"
        )

    async def _balance(self, _: BaseModel) -> str:
        settlement = self.client.settlement
        balance = await settlement.token.balance_of(settlement.account)
        if self.guard is None:
            return f"balance {balance} base units (no mandate)"
        spent, terms = self.guard.spent(), self.guard.terms
        return (
            f"balance {balance} base units; mandate {terms.mandate_id}: spent {spent.total} of "
            f"{terms.total_budget}, {self.guard.remaining()} left, at most {terms.per_call_cap} per call"
        )

    async def _channels(self, _: BaseModel) -> str:
        rows = [
            f"channel {cid}: deposit {c.deposit}, paid {c.cumulative}, expires {c.expiry}"
            + (" (refunded)" if c.refunded else "")
            for cid, c in self.client.payer.channels.items()
        ]
        return "\n".join(rows) if rows else "no channels"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    return f"{where}: {error['msg']}"
