"""Contract-net negotiation, both sides: the engine enforces the buyer's budget and the seller's floor.

Policies (pricing, concession, acceptance) are async and only propose. Whatever they return, the engine
clamps a seller's offers to [floor, opening] and a buyer's to [opening, budget], and never agrees to a
price outside them: an acceptance beyond the limit is refused and counted in `NegotiationSeller.refusals`
/ `NegotiationBuyer.refusals`. Negotiation state lives in typed repositories in the agent's store.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from uagents import Context, Model

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.policies import NegotiationPolicy, NegotiationView, PricingPolicy
from agents.state import Record, Repository, key
from agents.transport import DeliveryError
from protocols import negotiation
from protocols.errors import ErrorCode
from protocols.negotiation import Accept, CallForProposals, CounterOffer, JobSpec, Proposal, Reject


class JobSpecFields(Record):
    """The job being negotiated (the wire JobSpec's fields)."""

    kind: str
    model_id: str
    units: int


class SellerNegotiation(Record):
    """A seller's view of one negotiation with one buyer."""

    buyer: str
    job: JobSpecFields
    opening: int
    reservation: int
    started_at: float
    deadline: float
    max_rounds: int
    status: str = "open"
    """open | agreed | rejected | withdrawn"""
    our_last: int | None = None
    price: int | None = None


class Agreement(Record):
    """A deal either side agreed: who with, the job, the price (base units)."""

    negotiation_id: str
    counterparty: str
    kind: str
    model_id: str
    units: int
    price: int
    at: float

    @classmethod
    def of(
        cls, negotiation_id: str, counterparty: str, job: JobSpecFields | JobSpec, price: int, at: float
    ) -> Agreement:
        """The agreement on `job` with `counterparty` at `price`."""
        return cls(
            negotiation_id=negotiation_id,
            counterparty=counterparty,
            kind=job.kind,
            model_id=job.model_id,
            units=job.units,
            price=price,
            at=at,
        )


def _clamp(price: int, low: int, high: int) -> int:
    return min(max(price, low), high)


class NegotiationSeller(Capability):
    """Answers CallForProposals, CounterOffer, Accept and Reject with prices from injected policies."""

    def __init__(self, agent: AgoraAgent, pricing: PricingPolicy, policy: NegotiationPolicy | None = None) -> None:
        super().__init__(agent)
        self.pricing = pricing
        self.policy = policy or NegotiationPolicy()
        self.negotiations = Repository(agent.store, "negotiation.seller", SellerNegotiation)
        self.agreements = Repository(agent.store, "negotiation.sold", Agreement)
        self.refusals = 0
        """Policy decisions the engine overruled (an offer outside the limits, an acceptance below the floor)."""

    def handlers(self) -> Iterable[Handlers]:
        """The seller side of the negotiation protocol."""
        handlers: dict[type[Model], Handler] = {
            CallForProposals: self._on_call_for_proposals,
            CounterOffer: self._on_counter_offer,
            Accept: self._on_accept,
            Reject: self._on_reject,
        }
        return (Handlers(negotiation.SPEC, "seller", handlers),)

    def agreed_price(self, buyer: str, kind: str, matches: Iterable[str]) -> Agreement | None:
        """The latest agreement with `buyer` for a job of `kind` on one of the model ids `matches`."""
        wanted = set(matches)
        found = [a for a in self.agreements.values() if a.counterparty == buyer and a.kind == kind]
        found = [a for a in found if a.model_id in wanted]
        return max(found, key=lambda a: a.at) if found else None

    async def _offer(self, state: SellerNegotiation, round_: int, their_last: int | None) -> int:
        view = NegotiationView(state.started_at, state.deadline, round_, state.max_rounds, state.our_last, their_last)
        proposed = await self.policy.concession.offer(state.opening, state.reservation, view, self.agent.clock.now())
        price = _clamp(proposed, state.reservation, state.opening)
        self.refusals += price != proposed
        return price

    async def _on_call_for_proposals(self, ctx: Context, sender: str, msg: CallForProposals) -> None:
        now = self.agent.clock.now()
        quote = await self.pricing.quote(msg.job)
        reason = None
        if msg.deadline <= now:
            reason = "deadline already passed"
        elif quote is None:
            reason = "job not offered"
        elif quote[1] > msg.max_price:
            reason = "budget below our floor"
        if reason is not None or quote is None:
            await ctx.send(sender, Reject(negotiation_id=msg.negotiation_id, reason=reason or "declined"))
            return
        reservation = quote[1]
        state = SellerNegotiation(
            buyer=sender,
            job=JobSpecFields(kind=msg.job.kind, model_id=msg.job.model_id, units=msg.job.units),
            opening=max(min(quote[0], msg.max_price), reservation),
            reservation=reservation,
            started_at=now,
            deadline=msg.deadline,
            max_rounds=msg.max_rounds,
        )
        if not self.negotiations.add(key(sender, msg.negotiation_id), state):
            raise Rejected(ErrorCode.REPLAYED, "a negotiation with this id already exists")
        state.our_last = await self._offer(state, 0, None)
        self.negotiations.put(key(sender, msg.negotiation_id), state)
        await ctx.send(
            sender, Proposal(negotiation_id=msg.negotiation_id, price=state.our_last, round=0, valid_until=msg.deadline)
        )

    async def _on_counter_offer(self, ctx: Context, sender: str, msg: CounterOffer) -> None:
        state = self._open(sender, msg.negotiation_id)
        now = self.agent.clock.now()
        if now > state.deadline or msg.round > state.max_rounds:
            state.status = "rejected"
            self.negotiations.put(key(sender, msg.negotiation_id), state)
            reason = "deadline passed" if now > state.deadline else "too many rounds"
            await ctx.send(sender, Reject(negotiation_id=msg.negotiation_id, reason=reason))
            return
        our_next = await self._offer(state, msg.round, msg.price)
        if await self.policy.acceptance.accepts("seller", msg.price, our_next, state.reservation):
            if msg.price >= state.reservation:
                self._agree(sender, msg.negotiation_id, state, msg.price)
                await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))
                return
            self.refusals += 1  # the policy would sell below the floor: the engine does not
        state.our_last = our_next
        self.negotiations.put(key(sender, msg.negotiation_id), state)
        proposal = Proposal(
            negotiation_id=msg.negotiation_id, price=our_next, round=msg.round, valid_until=math.floor(state.deadline)
        )
        await ctx.send(sender, proposal)

    async def _on_accept(self, ctx: Context, sender: str, msg: Accept) -> None:
        state = self._open(sender, msg.negotiation_id)
        if msg.price != state.our_last or self.agent.clock.now() > state.deadline:
            await ctx.send(sender, Reject(negotiation_id=msg.negotiation_id, reason="offer no longer valid"))
            return
        self._agree(sender, msg.negotiation_id, state, msg.price)
        await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))

    async def _on_reject(self, ctx: Context, sender: str, msg: Reject) -> None:
        state = self.negotiations.get(key(sender, msg.negotiation_id))
        if state is not None:
            state.status = "withdrawn" if state.status == "agreed" else "rejected"
            self.negotiations.put(key(sender, msg.negotiation_id), state)
            if state.status == "withdrawn":
                self.agreements.delete(key(sender, msg.negotiation_id))

    def _open(self, buyer: str, negotiation_id: str) -> SellerNegotiation:
        state = self.negotiations.get(key(buyer, negotiation_id))
        if state is None or state.status != "open":
            raise Rejected(ErrorCode.REJECTED, "no open negotiation with that id")
        return state

    def _agree(self, buyer: str, negotiation_id: str, state: SellerNegotiation, price: int) -> None:
        state.status, state.price = "agreed", price
        self.negotiations.put(key(buyer, negotiation_id), state)
        agreement = Agreement.of(negotiation_id, buyer, state.job, price, self.agent.clock.now())
        self.agreements.put(key(buyer, negotiation_id), agreement)


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


class NegotiationBuyer(Capability):
    """Runs contract-net negotiations: `await buyer.negotiate(sellers, job, BuyerLimits(...))` → best Deal or None.

    The price of a deal never exceeds `limits.budget`, whatever the injected policy proposes or accepts.
    """

    def __init__(self, agent: AgoraAgent, policy: NegotiationPolicy | None = None, *, listen: bool = True) -> None:
        super().__init__(agent)
        self.policy = policy or NegotiationPolicy()
        self.listen = listen
        """Include the buyer-side protocol (for late replies); off for agents that also sell through negotiation."""
        self.agreements = Repository(agent.store, "negotiation.bought", Agreement)
        self.refusals = 0
        """Policy decisions the engine overruled (an offer above the budget, an acceptance above it)."""

    def handlers(self) -> Iterable[Handlers]:
        """The buyer side of the negotiation protocol, which only logs replies that came after their wait."""
        if not self.listen:
            return ()
        late: dict[type[Model], Handler] = dict.fromkeys((Proposal, Accept, Reject), self._on_late_reply)
        return (Handlers(negotiation.SPEC, "buyer", late),)

    async def _on_late_reply(self, ctx: Context, sender: str, msg: Model) -> None:
        # Replies normally resolve the awaiting request; one arriving here came after its wait ran out.
        ctx.logger.info("late %s from %s ignored", type(msg).__name__, sender[:16])

    async def _ask(self, seller: str, message: Model, expect: Sequence[type[Model]], wait: float) -> Model | None:
        try:
            return await self.agent.request_any(seller, message, expect, wait=wait)
        except (RemoteError, DeliveryError, TimeoutError) as err:
            self.agent.logger.info("seller %s dropped: %s", seller[:16], err)
            return None

    async def _ask_all(
        self, messages: dict[str, Model], expect: Sequence[type[Model]], wait: float
    ) -> dict[str, Model | None]:
        answers = await asyncio.gather(*(self._ask(s, m, expect, wait) for s, m in messages.items()))
        return dict(zip(messages, answers, strict=True))

    async def _next_offer(self, limits: BuyerLimits, view: NegotiationView) -> int:
        proposed = await self.policy.concession.offer(limits.opening, limits.budget, view, self.agent.clock.now())
        price = _clamp(proposed, min(limits.opening, limits.budget), limits.budget)
        self.refusals += price != proposed
        return price

    async def negotiate(self, sellers: Sequence[str], job: JobSpec, limits: BuyerLimits) -> Deal | None:
        """Run a contract-net negotiation; the deal price never exceeds `limits.budget`."""
        nid = uuid.uuid4().hex
        clock = self.agent.clock
        started = clock.now()
        deadline = math.floor(started + limits.deadline_s)
        cfp = CallForProposals(
            negotiation_id=nid, job=job, max_price=limits.budget, deadline=deadline, max_rounds=limits.max_rounds
        )
        answers = await self._ask_all({s: cfp for s in sellers}, (Proposal, Reject), limits.reply_wait)
        offers = {s: a.price for s, a in answers.items() if isinstance(a, Proposal)}
        round_, our_last = 0, None
        while offers and clock.now() < deadline:
            seller = min(offers, key=lambda s: offers[s])
            view = NegotiationView(started, deadline, round_, limits.max_rounds, our_last, offers[seller])
            our_next = await self._next_offer(limits, view)
            if await self.policy.acceptance.accepts("buyer", offers[seller], our_next, limits.budget):
                if offers[seller] > limits.budget:
                    self.refusals += 1  # the policy would pay more than the budget: the engine does not
                else:
                    accept = Accept(negotiation_id=nid, price=offers[seller], round=round_)
                    confirm = await self._ask(seller, accept, (Accept, Reject), limits.reply_wait)
                    if isinstance(confirm, Accept) and confirm.price == offers[seller]:
                        return await self._close(nid, seller, job, offers[seller], round_, sellers)
                    offers.pop(seller)
                    continue
            if round_ >= limits.max_rounds:
                break
            round_, our_last = round_ + 1, our_next
            counter = CounterOffer(negotiation_id=nid, price=our_next, round=round_)
            answers = await self._ask_all({s: counter for s in offers}, (Proposal, Accept, Reject), limits.reply_wait)
            agreed = [s for s, a in answers.items() if isinstance(a, Accept) and a.price == our_next]
            if agreed:
                return await self._close(nid, agreed[0], job, our_next, round_, sellers)
            offers = {s: a.price for s, a in answers.items() if isinstance(a, Proposal)}
        await self._reject_all(nid, sellers, "no agreement")
        return None

    async def _close(
        self, nid: str, seller: str, job: JobSpec, price: int, rounds: int, sellers: Sequence[str]
    ) -> Deal:
        await self._reject_all(nid, [s for s in sellers if s != seller], "another offer was accepted")
        self.agreements.put(nid, Agreement.of(nid, seller, job, price, self.agent.clock.now()))
        return Deal(negotiation_id=nid, seller=seller, price=price, rounds=rounds)

    async def _reject_all(self, nid: str, sellers: Sequence[str], reason: str) -> None:
        message = Reject(negotiation_id=nid, reason=reason)
        results = await asyncio.gather(*(self.agent.send(s, message) for s in sellers), return_exceptions=True)
        for seller, result in zip(sellers, results, strict=True):
            if isinstance(result, BaseException):
                self.agent.logger.info("could not tell %s: %s", seller[:16], result)
