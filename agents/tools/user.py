"""LangChain tools for a user agent: find sellers, buy inference, check the balance and the open channels.

Tools take typed (pydantic) arguments and return readable strings. Spending goes through the agent's
InferenceClient and ChannelPayer, so the user's mandate (checked in the payer before any signature) applies
whatever the model asks. Bad arguments and refused actions come back as one-line `error[<code>]: ...`
strings, with no side effect; every call and its outcome is appended to a transcript in the agent's store.
No tool takes or returns key material, and no tool takes a payee address: sellers come from the registry.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from agents.base import AgoraAgent
from agents.capabilities.inference import InferenceClient, InferencePlan
from agents.capabilities.mandate import MandateGuard
from agents.tools.base import NoArguments, ToolCallRecord, Toolkit, ToolReport, Transcript
from marketplace.ml import ModelKind

__all__ = ["NoArguments", "ToolCallRecord", "ToolReport", "ToolSettings", "Transcript", "UserToolkit"]

MAX_CALLS_PER_PURCHASE = 100


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


class UserToolkit(Toolkit):
    """The user's LangChain tools over its InferenceClient (and so its guarded ChannelPayer)."""

    def __init__(
        self,
        agent: AgoraAgent,
        client: InferenceClient,
        guard: MandateGuard | None = None,
        settings: ToolSettings | None = None,
    ) -> None:
        super().__init__(agent, guard)
        self.client = client
        self.settings = settings or ToolSettings()

    def tools(self) -> list[BaseTool]:
        """search_sellers, buy_inference, check_balance, list_channels."""
        return [
            self.tool("search_sellers", SearchSellers, self._search, "List sellers of inference on a model kind."),
            self.tool(
                "buy_inference",
                BuyInference,
                self._buy,
                "Buy inference calls on a model kind, paying at most max_per_call base units per call "
                "(the user's mandate is enforced).",
            ),
            self.tool("check_balance", NoArguments, self._balance, "Token balance and what the mandate leaves."),
            self.tool("list_channels", NoArguments, self._channels, "Payment channels this agent opened."),
        ]

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
