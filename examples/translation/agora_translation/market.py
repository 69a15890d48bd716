"""The translation market plugin: translators sell per-request translations to clients through payment channels.

Scenario section `markets.translation`; phases: translation (trade), translation-claims (settle),
translation-refunds (after deadlines). Report: `markets.translation` plus the clients→translators flow.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.capabilities.control import Empty
from agents.markets.plugin import EconomyContext, Market, Participant, Phase, Refund
from agents.roles.selling import CLAIM
from agents.roles.user import REFUND_CHANNELS
from agora_translation.roles import CLIENT, MODEL_ID, TRANSLATE, TRANSLATOR, TranslationOrder, translate

FLOW = "clients→translators (translation)"

CORPUS = (
    "hello world",
    "the cat buys a fish",
    "every agent pays the market",
    "good morning world",
    "the model and the token",
    "hello agent",
)


def _empty_report() -> dict[str, Any]:
    return {
        "model": MODEL_ID,
        "requests": 0,
        "paid": 0,
        "wrong": 0,
        "spent": 0,
        "claimed": 0,
        "refunded": 0,
        "clients": {},
        "samples": [],
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TranslatorSpec(_Strict):
    """One translator and its prices per request (base units)."""

    name: str
    price_per_call: int = Field(gt=0)
    floor: int = Field(gt=0)


class TranslationSection(_Strict):
    """The translation market of a scenario: client i orders `texts_per_client` texts drawn from `corpus`."""

    translators: list[TranslatorSpec] = Field(min_length=1)
    clients: int = Field(default=3, ge=1, le=100)
    texts_per_client: int = Field(default=4, ge=1, le=100)
    client_budget: int = Field(default=10**17, gt=0)
    """Tokens each client holds and deposits into its channel."""
    opening_per_call: int = Field(default=10**15, gt=0)
    max_per_call: int = Field(default=5 * 10**15, gt=0)
    channel_ttl: int = Field(default=3_600, gt=0)
    corpus: list[str] = Field(default=list(CORPUS), min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> TranslationSection:
        for spec in self.translators:
            if spec.floor > spec.price_per_call:
                raise ValueError(f"translator {spec.name!r}: floor above price_per_call")
        if self.max_per_call * self.texts_per_client > self.client_budget:
            raise ValueError("client_budget cannot pay texts_per_client requests at max_per_call")
        return self


class TranslationMarket(Market):
    """Paid toy translation (see module docstring)."""

    name: ClassVar[str] = "translation"
    section: ClassVar[type[BaseModel]] = TranslationSection

    def participants(self, section: TranslationSection, seed: int) -> list[Participant]:
        """Translators need no tokens (only gas); clients hold their budget for one channel each."""
        found = [
            Participant(
                name=spec.name,
                role=TRANSLATOR,
                factory="agora_translation.roles:translator",
                options={"price_per_call": spec.price_per_call, "floor": spec.floor},
            )
            for spec in section.translators
        ]
        found += [
            Participant(
                name=f"client-{i + 1}",
                role=CLIENT,
                factory="agora_translation.roles:client",
                funding=section.client_budget,
            )
            for i in range(section.clients)
        ]
        return found

    def phases(self, section: TranslationSection) -> list[Phase]:
        """translation → translation-claims → (deadlines pass) → translation-refunds."""

        def report(ctx: EconomyContext) -> dict[str, Any]:
            return ctx.ledger.sections.setdefault(self.name, _empty_report())

        async def translation(ctx: EconomyContext) -> None:
            section_report, counts = report(ctx), ctx.ledger.jobs.setdefault(self.name, Counter())
            translators = {ctx.address(name): name for name in ctx.names(TRANSLATOR)}
            clients = ctx.names(CLIENT)
            for i, name in enumerate(clients):
                texts = random.Random(f"{ctx.seed}:{name}").choices(section.corpus, k=section.texts_per_client)
                order = TranslationOrder(
                    texts=texts,
                    opening_per_call=section.opening_per_call,
                    max_per_call=section.max_per_call,
                    deposit=section.client_budget,
                    channel_ttl=section.channel_ttl,
                )
                outcome = await ctx.call(name, TRANSLATE, order, wait=300)
                done = [(text, got) for text, got in zip(texts, outcome.translations, strict=False) if got is not None]
                counts.update(paid=len(done), refused=len(texts) - len(done))
                section_report["requests"] += len(texts)
                section_report["paid"] += len(done)
                # The model is public and deterministic, so the market can check every answer.
                section_report["wrong"] += sum(got != translate(text) for text, got in done)
                section_report["spent"] += outcome.spent
                section_report["clients"][name] = {
                    "translator": translators.get(outcome.translator or ""),
                    "price_per_call": outcome.price_per_call,
                    "paid": len(done),
                }
                section_report["samples"] += [{"text": text, "translation": got} for text, got in done[:1]]
                ctx.progress("translation", i + 1, len(clients))

        async def claims(ctx: EconomyContext) -> None:
            section_report = report(ctx)
            for name in ctx.names(TRANSLATOR):
                if not ctx.alive(name):
                    continue
                for pairs, gas in (await ctx.call(name, CLAIM, Empty())).claims:
                    amount = sum(a for _, a in pairs)
                    ctx.ledger.claims.append({"seller": name, "channels": len(pairs), "amount": amount, "gas": gas})
                    ctx.ledger.flows[FLOW] += amount  # channels here name no model: no royalty split
                    section_report["claimed"] += amount

        async def refunds(ctx: EconomyContext) -> None:
            section_report = report(ctx)
            for name in ctx.names(CLIENT):
                for amount in (await ctx.call(name, REFUND_CHANNELS, Empty())).amounts:
                    reason = "unspent translation deposit after expiry"
                    ctx.ledger.refunds.append(Refund(kind="channel", payer=name, amount=amount, reason=reason))
                    section_report["refunded"] += amount

        return [
            Phase("translation", "trade", translation),
            Phase("translation-claims", "settle", claims),
            Phase("translation-refunds", "after-deadlines", refunds),
        ]

    def settle_window(self, section: TranslationSection) -> int:
        """Clients' channels expire, so the refunds phase can close them."""
        return section.channel_ttl

    def labels(self) -> dict[str, str]:
        """Progress-bar labels."""
        return {"translation": "clients buying translations"}


MARKET = TranslationMarket()
"""The instance registered under the `agora.markets` entry point `translation` (see this package's pyproject)."""
