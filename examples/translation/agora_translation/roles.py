"""The translation market's roles, composed from agora's capabilities like agora's own roles.

translator: negotiation seller + channel payee + `Translating` (answers paid TranslationRequests with the model).
client: negotiation buyer + channel payer + `Ordering` (finds translators, negotiates, pays each request).
Both are `build(settings, deps, options)` factories driven by control commands, so the runner can host them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from uagents import Context

from agents import AgentDeps, AgentSettings, AgoraAgent, BuyerLimits, DeliveryError, Rejected, RemoteError, UnitPricing
from agents.capabilities.control import Command, Empty
from agents.capabilities.kit import Capability, Handlers, compose
from agents.capabilities.negotiation import NegotiationBuyer, NegotiationSeller
from agents.capabilities.payment import ChannelPayee, ChannelPayer
from agents.roles.base import RoleOptions, RoleParts, role_parts
from agents.roles.selling import CLAIM, Claimed
from agents.roles.user import REFUND_CHANNELS, Refunds
from agora_translation.protocol import SPEC, TranslationRequest, TranslationResult
from protocols.cards import Offering
from protocols.errors import ErrorCode
from protocols.negotiation import JobSpec

TRANSLATOR = "translator"
CLIENT = "client"
JOB_KIND = "translation"
MODEL_ID = "toy-en-fr"
"""The one model of this market: a fixed English→French lexicon."""
MAX_TEXT = 2_000
"""Longest text (characters) a translator takes in one request."""

LEXICON = {
    "a": "un",
    "agent": "agent",
    "and": "et",
    "buys": "achète",
    "cat": "chat",
    "every": "chaque",
    "fish": "poisson",
    "good": "bon",
    "hello": "bonjour",
    "market": "marché",
    "model": "modèle",
    "morning": "matin",
    "pays": "paie",
    "the": "le",
    "token": "jeton",
    "world": "monde",
}


def translate(text: str) -> str:
    """The deterministic fake model: word by word through LEXICON; a word it does not know comes back reversed."""
    return " ".join(LEXICON.get(word, word[::-1]) for word in text.lower().split())


class Translating(Capability):
    """Answers a TranslationRequest only after a voucher paid for it (the request's job id)."""

    def __init__(self, agent: AgoraAgent, payee: ChannelPayee) -> None:
        super().__init__(agent)
        self.payee = payee

    def handlers(self) -> Iterable[Handlers]:
        """TranslationRequest, in the translator role of the translation protocol."""
        return (Handlers(SPEC, "translator", {TranslationRequest: self._on_request}),)

    async def _on_request(self, ctx: Context, sender: str, msg: TranslationRequest) -> None:
        if msg.model_id != MODEL_ID:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.model_id} not offered here")
        if len(msg.text) > MAX_TEXT:
            raise Rejected(ErrorCode.MALFORMED, f"text longer than {MAX_TEXT} characters")
        self.payee.use_credit(sender, msg.job_id, 0)  # channels of this market name no ModelRegistry token
        await ctx.send(sender, TranslationResult(job_id=msg.job_id, model_id=msg.model_id, text=translate(msg.text)))


class TranslatorOptions(RoleOptions):
    """A translator's prices per request (base units): where it opens and its floor."""

    price_per_call: int
    floor: int


def translator(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A translator built from plain options (see TranslatorOptions)."""
    opts = TranslatorOptions.model_validate(options)
    offering = Offering(model_id=MODEL_ID, job_kind=JOB_KIND, price_per_unit=opts.price_per_call)
    parts = role_parts(TRANSLATOR, settings, deps, opts)
    parts.offerings = lambda: [offering]
    agent, settlement = parts.agent, parts.settlement
    selling = NegotiationSeller(agent, UnitPricing(opts.price_per_call, opts.floor, frozenset({MODEL_ID})))

    async def price_of(buyer: str, model_chain_id: int) -> int:
        deal = selling.agreed_price(buyer, JOB_KIND, {MODEL_ID})
        if deal is None:
            raise Rejected(ErrorCode.REJECTED, "no agreed translation price with this client")
        return deal.price // max(deal.units, 1)

    payee = ChannelPayee(agent, settlement, price_of)
    payee.accepts_model = lambda model_chain_id: model_chain_id == 0

    async def claim(_: Empty) -> Claimed:
        await payee.claim()
        return Claimed(claims=[([(c.channel_id, c.amount) for c in cs], gas) for cs, gas in payee.claim_log])

    parts.control.handle(CLAIM, claim)
    return compose(agent, parts.control, selling, payee, Translating(agent, payee))


class TranslationOrder(BaseModel):
    """Texts to translate, the per-request price limits, and the channel's deposit and lifetime (s)."""

    texts: list[str]
    opening_per_call: int
    max_per_call: int
    deposit: int
    channel_ttl: int


class TranslationOutcome(BaseModel):
    """What a client got: from whom (agent address), at what price per request, over which channel."""

    translator: str | None = None
    price_per_call: int = 0
    channel: int | None = None
    translations: list[str | None] = []
    """One per text, in order; None where the request was refused."""
    refused: int = 0
    spent: int = 0


TRANSLATE = Command("translate", TranslationOrder, TranslationOutcome)


class Ordering(Capability):
    """Buys translations: find translators in the registry, negotiate the lot, open a channel, pay per request."""

    def __init__(self, parts: RoleParts, buying: NegotiationBuyer, payer: ChannelPayer) -> None:
        super().__init__(parts.agent)
        self.settlement, self.buying, self.payer = parts.settlement, buying, payer

    async def order(self, order: TranslationOrder) -> TranslationOutcome:
        """Translate every text with the translator that agreed the best price (None found: nothing translated)."""
        page = await self.settlement.require_registry().search(role=TRANSLATOR, job_kind=JOB_KIND, limit=100)
        owners = {entry.card.address: entry.card.owner for entry in page.results}
        calls, outcome = len(order.texts), TranslationOutcome()
        job = JobSpec(kind=JOB_KIND, model_id=MODEL_ID, units=calls)
        limits = BuyerLimits(opening=order.opening_per_call * calls, budget=order.max_per_call * calls)
        deal = await self.buying.negotiate(sorted(owners), job, limits) if owners else None
        if deal is None:
            return outcome
        per_call = deal.price // calls
        channel = await self.payer.open(deal.seller, owners[deal.seller], order.deposit, order.channel_ttl, 0)
        outcome.translator, outcome.price_per_call, outcome.channel = deal.seller, per_call, channel
        for i, text in enumerate(order.texts):
            job_id = f"{self.agent.name}-{channel}-{i}"
            request = TranslationRequest(job_id=job_id, model_id=MODEL_ID, text=text, price=per_call)
            try:
                await self.payer.pay(channel, per_call, job_id)
                result = await self.agent.request(deal.seller, request, TranslationResult)
            except (RemoteError, DeliveryError, TimeoutError, ValueError):  # ValueError: the deposit ran out
                outcome.refused += 1
                outcome.translations.append(None)
                continue
            outcome.translations.append(result.text)
            outcome.spent += per_call
        return outcome


def client(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A translation client built from plain options (see RoleOptions)."""
    parts = role_parts(CLIENT, settings, deps, RoleOptions.model_validate(options))
    buying, payer = NegotiationBuyer(parts.agent), ChannelPayer(parts.agent, parts.settlement)
    ordering = Ordering(parts, buying, payer)

    async def refund(_: Empty) -> Refunds:
        return Refunds(amounts=[r.amount for r in await payer.refund_expired()])

    parts.control.handle(TRANSLATE, ordering.order)
    parts.control.handle(REFUND_CHANNELS, refund)
    return compose(parts.agent, parts.control, buying, payer, ordering)
