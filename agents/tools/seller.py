"""LangChain tools for a model seller: its models and prices, a price change within the owner's bounds, its
earnings and channels, claiming what buyers paid, and the royalties its models route upstream or receive.

Every tool calls the seller's own capabilities (catalogue, channel payee); nothing here signs a voucher or moves
tokens except the payee's claim, which pays the seller. A price outside the bounds is refused before any
transaction. Results are readable one-liners; errors are `error[<code>]: ...` with no side effect.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from agents.base import AgoraAgent
from agents.capabilities.catalogue import CatalogueEntry, ModelCatalogue
from agents.capabilities.payment import ChannelPayee
from agents.tools.base import NoArguments, Toolkit, ToolRefused

MAX_MODELS_SCANNED = 1_000
"""Most registered models `show_royalties` reads when looking for models that pay this seller's."""


class PriceBounds(BaseModel):
    """The owner's bounds on a price the model may set: never below the reserve, at most `max_markup` times it."""

    max_markup: int = Field(default=10, ge=1)


class SetPrice(BaseModel):
    """Sell one of this seller's models at a new list price per call."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64, description="A model id from list_models.")
    price_per_call: int = Field(gt=0, description="New list price per call, in token base units.")


class SellerToolkit(Toolkit):
    """The seller's tools over its catalogue and channel payee."""

    def __init__(
        self,
        agent: AgoraAgent,
        catalogue: ModelCatalogue,
        payee: ChannelPayee,
        bounds: PriceBounds | None = None,
    ) -> None:
        super().__init__(agent)
        self.catalogue = catalogue
        self.payee = payee
        self.bounds = bounds or PriceBounds()

    def tools(self) -> list[BaseTool]:
        """list_models, set_price, check_earnings, list_payment_channels, claim_payments, show_royalties."""
        return [
            self.tool("list_models", NoArguments, self._models, "This seller's models, prices and reserves."),
            self.tool(
                "set_price",
                SetPrice,
                self._set_price,
                "Change a model's list price per call (between its reserve and the owner's ceiling).",
            ),
            self.tool("check_earnings", NoArguments, self._earnings, "Token balance, paid, claimed and unclaimed."),
            self.tool(
                "list_payment_channels", NoArguments, self._channels, "Channels buyers opened to pay this seller."
            ),
            self.tool("claim_payments", NoArguments, self._claim, "Claim every channel's best voucher on chain."),
            self.tool("show_royalties", NoArguments, self._royalties, "Royalty shares this seller's models pay/earn."),
        ]

    async def _models(self, _: BaseModel) -> str:
        entries = sorted(self.catalogue.entries.values(), key=lambda e: e.model_id)
        if not entries:
            return "no models served"
        training = self.catalogue.training
        per_job = f"; fine-tuning {training.price} per job" if training is not None else ""
        return "\n".join(
            f"{e.model_id} ({e.kind}, token {e.chain_id}): {e.price_per_call} per call, reserve {e.floor_per_call}, "
            f"ceiling {self._ceiling(e)}{per_job}"
            for e in entries
        )

    def _ceiling(self, entry: CatalogueEntry) -> int:
        return entry.floor_per_call * self.bounds.max_markup

    async def _set_price(self, args: BaseModel) -> str:
        assert isinstance(args, SetPrice)
        entry = self.catalogue.get(args.model_id)
        if entry is None:
            raise ToolRefused("not_found", f"model {args.model_id!r} is not served here")
        low, high = entry.floor_per_call, self._ceiling(entry)
        if not low <= args.price_per_call <= high:
            raise ToolRefused(
                "out_of_bounds", f"price {args.price_per_call} is outside {low}..{high} for {args.model_id}"
            )
        old = entry.price_per_call
        await self.catalogue.reprice(args.model_id, args.price_per_call)
        return f"{args.model_id}: {old} -> {args.price_per_call} per call (quotes use it now)"

    async def _earnings(self, _: BaseModel) -> str:
        settlement = self.payee.settlement
        balance = await settlement.token.balance_of(settlement.account)
        channels = self.payee.channels.values()
        paid = sum(c.cumulative for c in channels)
        claimed = sum(c.claimed for c in channels)
        return (
            f"balance {balance} base units; buyers paid {paid} by voucher over {len(channels)} channel(s): "
            f"{claimed} claimed, {self.payee.unclaimed()} unclaimed"
        )

    async def _channels(self, _: BaseModel) -> str:
        rows = [
            f"channel {cid} from {c.payer}: deposit {c.deposit}, paid {c.cumulative}, claimed {c.claimed}, "
            f"expires {c.expiry}" + (" (closed)" if c.closed else "")
            for cid, c in sorted(self.payee.channels.items(), key=lambda item: int(item[0]))
        ]
        return "\n".join(rows) if rows else "no channels"

    async def _claim(self, _: BaseModel) -> str:
        claims = await self.payee.claim()
        if not claims:
            return f"nothing to claim ({self.payee.unclaimed()} unclaimed)"
        total = sum(c.amount for c in claims)
        return f"claimed {total} from {len(claims)} channel(s); royalties were split on chain"

    async def _royalties(self, _: BaseModel) -> str:
        registry = self.catalogue.settlement.model_registry
        own = {e.chain_id: e for e in self.catalogue.entries.values()}
        if not own:
            return "no models served"
        lines = []
        for chain_id, entry in sorted(own.items()):
            lineage = await registry.lineage_of(chain_id)
            upstream = [f"model {p}: {bps} bps" for p, bps in lineage.parents]
            upstream += [f"{c}: {bps} bps" for c, bps in lineage.contributors]
            lines.append(f"{entry.model_id} pays " + (", ".join(upstream) if upstream else "no royalties"))
        count = min(await registry.model_count(), MAX_MODELS_SCANNED)
        for model in range(1, count + 1):
            if model in own:
                continue
            for parent, bps in (await registry.lineage_of(model)).parents:
                if parent in own:
                    lines.append(f"model {model} pays {own[parent].model_id} {bps} bps of its revenue")
        return "\n".join(lines)
