"""A buyer running contract-net negotiations with several sellers: CFP, proposals, counteroffers, accept."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from uagents import Context, Model, Protocol

from agents.base import AgentDeps, AgoraAgent, RemoteError
from agents.policies import NegotiationPolicy, NegotiationView
from agents.roles.seller import bind
from agents.settings import AgentSettings
from agents.transport import DeliveryError
from protocols import negotiation
from protocols.negotiation import Accept, CallForProposals, CounterOffer, JobSpec, Proposal, Reject


@dataclass(frozen=True)
class Deal:
    """An agreed trade: who sells, at what price (base units), after how many counteroffer rounds."""

    negotiation_id: str
    seller: str
    price: int
    rounds: int


@dataclass(frozen=True)
class BuyerLimits:
    """A buyer's limits for one negotiation: its opening and maximum price, deadline and rounds."""

    opening: int
    budget: int
    deadline_s: float = 10.0
    max_rounds: int = 5
    reply_wait: float = 5.0


class BuyerAgent(AgoraAgent):
    """Buys jobs: `await buyer.negotiate(sellers, job, BuyerLimits(...))` returns the best Deal or None."""

    def __init__(
        self, settings: AgentSettings, deps: AgentDeps | None = None, *, policy: NegotiationPolicy | None = None
    ):
        super().__init__(settings, deps)
        self.policy = policy or NegotiationPolicy()
        late = Protocol(spec=negotiation.SPEC, role="buyer")
        for model in (Proposal, Accept, Reject):
            bind(late, negotiation.SPEC, model, self._on_late_reply)
        self.include(late)

    async def _on_late_reply(self, ctx: Context, sender: str, msg: Model) -> None:
        # Replies normally resolve the awaiting request; one arriving here came after its wait ran out.
        ctx.logger.info("late %s from %s ignored", type(msg).__name__, sender[:16])

    async def _ask(self, seller: str, message: Model, expect: Sequence[type[Model]], wait: float) -> Model | None:
        try:
            return await self.request_any(seller, message, expect, wait=wait)
        except (RemoteError, DeliveryError, TimeoutError) as err:
            self._logger.info("seller %s dropped: %s", seller[:16], err)
            return None

    async def _ask_all(
        self, messages: dict[str, Model], expect: Sequence[type[Model]], wait: float
    ) -> dict[str, Model | None]:
        answers = await asyncio.gather(*(self._ask(s, m, expect, wait) for s, m in messages.items()))
        return dict(zip(messages, answers, strict=True))

    async def negotiate(self, sellers: Sequence[str], job: JobSpec, limits: BuyerLimits) -> Deal | None:
        """Run a contract-net negotiation; the deal price never exceeds `limits.budget`."""
        nid = uuid.uuid4().hex
        started = self.clock.now()
        deadline = math.floor(started + limits.deadline_s)
        cfp = CallForProposals(
            negotiation_id=nid, job=job, max_price=limits.budget, deadline=deadline, max_rounds=limits.max_rounds
        )
        answers = await self._ask_all({s: cfp for s in sellers}, (Proposal, Reject), limits.reply_wait)
        offers = {s: a.price for s, a in answers.items() if isinstance(a, Proposal)}
        round_, our_last = 0, None
        while offers and self.clock.now() < deadline:
            seller = min(offers, key=lambda s: offers[s])
            view = NegotiationView(started, deadline, round_, limits.max_rounds, our_last, offers[seller])
            our_next = self.policy.concession.offer(limits.opening, limits.budget, view, self.clock.now())
            if self.policy.acceptance.accepts("buyer", offers[seller], our_next, limits.budget):
                accept = Accept(negotiation_id=nid, price=offers[seller], round=round_)
                confirm = await self._ask(seller, accept, (Accept, Reject), limits.reply_wait)
                if isinstance(confirm, Accept) and confirm.price == offers[seller]:
                    return await self._close(nid, seller, offers[seller], round_, sellers)
                offers.pop(seller)
                continue
            if round_ >= limits.max_rounds:
                break
            round_, our_last = round_ + 1, our_next
            counter = CounterOffer(negotiation_id=nid, price=our_next, round=round_)
            answers = await self._ask_all({s: counter for s in offers}, (Proposal, Accept, Reject), limits.reply_wait)
            agreed = [s for s, a in answers.items() if isinstance(a, Accept) and a.price == our_next]
            if agreed:
                return await self._close(nid, agreed[0], our_next, round_, sellers)
            offers = {s: a.price for s, a in answers.items() if isinstance(a, Proposal)}
        await self._reject_all(nid, sellers, "no agreement")
        return None

    async def _close(self, nid: str, seller: str, price: int, rounds: int, sellers: Sequence[str]) -> Deal:
        await self._reject_all(nid, [s for s in sellers if s != seller], "another offer was accepted")
        deal = Deal(negotiation_id=nid, seller=seller, price=price, rounds=rounds)
        self.store.put_job(nid, "negotiation", "agreed", {"seller": seller, "price": price}, self.clock.now())
        return deal

    async def _reject_all(self, nid: str, sellers: Sequence[str], reason: str) -> None:
        message = Reject(negotiation_id=nid, reason=reason)
        results = await asyncio.gather(*(self.send(s, message) for s in sellers), return_exceptions=True)
        for seller, result in zip(sellers, results, strict=True):
            if isinstance(result, BaseException):
                self._logger.info("could not tell %s: %s", seller[:16], result)
