"""A model seller: negotiates prices with injected policies and answers inference requests with committed outputs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from uagents import Context, Model, Protocol

from agents.base import AgentDeps, AgoraAgent
from agents.mods import Rejected
from agents.policies import NegotiationPolicy, NegotiationView, PricingPolicy
from agents.settings import AgentSettings
from protocols import jobs, negotiation
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult, TrainingRequest
from protocols.negotiation import Accept, CallForProposals, CounterOffer, JobSpec, Proposal, Reject


def commit_outputs(outputs: list[list[float]]) -> str:
    """The output commitment validators recompute: 0x-sha256 of the outputs' canonical JSON."""
    canonical = json.dumps(outputs, separators=(",", ":"), allow_nan=False)
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


def bind(protocol: Protocol, spec: Any, model: type[Model], handler: Any) -> None:
    """Register `handler` for `model` on a spec-built protocol, keeping the replies the spec declares."""
    # uAgents 0.26.1 compares a set with a dict when replies are passed to a locked protocol (always
    # "mismatch"), and passing None blanks the declared replies; so register, then restore them.
    protocol.on_message(model)(handler)
    protocol.replies[Model.build_schema_digest(model)] = {
        Model.build_schema_digest(reply): reply for reply in spec.interactions[model]
    }


class SellerAgent(AgoraAgent):
    """Sells inference: answers CallForProposals/CounterOffer/Accept by policy, and InferenceRequest via `infer`.

    Subclass and override `infer` (and `pricing` via the constructor) to build your own seller.
    """

    def __init__(
        self,
        settings: AgentSettings,
        deps: AgentDeps | None = None,
        *,
        pricing: PricingPolicy,
        policy: NegotiationPolicy | None = None,
    ) -> None:
        super().__init__(settings, deps)
        self.pricing = pricing
        self.policy = policy or NegotiationPolicy()
        talk = Protocol(spec=negotiation.SPEC, role="seller")
        bind(talk, negotiation.SPEC, CallForProposals, self._on_call_for_proposals)
        bind(talk, negotiation.SPEC, CounterOffer, self._on_counter_offer)
        bind(talk, negotiation.SPEC, Accept, self._on_accept)
        bind(talk, negotiation.SPEC, Reject, self._on_reject)
        self.include(talk)
        work = Protocol(spec=jobs.SPEC, role="seller")
        bind(work, jobs.SPEC, InferenceRequest, self._on_inference)
        bind(work, jobs.SPEC, TrainingRequest, self._on_training)
        self.include(work)

    async def infer(self, request: InferenceRequest) -> list[list[float]]:
        """Run the model on the inputs; override in your seller (the default refuses)."""
        raise Rejected(ErrorCode.REJECTED, "this seller does not run inference")

    def negotiation_state(self, buyer: str, negotiation_id: str) -> dict[str, Any] | None:
        """The stored state of one negotiation with one buyer (status: open, agreed, rejected, withdrawn)."""
        state: dict[str, Any] | None = self.store.get(f"negotiation:{buyer}:{negotiation_id}")
        return state

    def _save(self, buyer: str, negotiation_id: str, state: dict[str, Any]) -> None:
        self.store.put(f"negotiation:{buyer}:{negotiation_id}", state)

    @staticmethod
    def _view(state: dict[str, Any], round_: int, their_last: int | None) -> NegotiationView:
        return NegotiationView(
            started_at=state["started_at"],
            deadline=state["deadline"],
            round=round_,
            max_rounds=state["max_rounds"],
            our_last=state.get("our_last"),
            their_last=their_last,
        )

    async def _on_call_for_proposals(self, ctx: Context, sender: str, msg: CallForProposals) -> None:
        now = self.clock.now()
        quote = self.pricing.quote(msg.job)
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
        opening, reservation = min(quote[0], msg.max_price), quote[1]
        state: dict[str, Any] = {
            "job": msg.job.dict(),
            "opening": opening,
            "reservation": reservation,
            "started_at": now,
            "deadline": msg.deadline,
            "max_rounds": msg.max_rounds,
            "status": "open",
        }
        price = self.policy.concession.offer(opening, reservation, self._view(state, 0, None), now)
        state["our_last"] = price
        self._save(sender, msg.negotiation_id, state)
        proposal = Proposal(negotiation_id=msg.negotiation_id, price=price, round=0, valid_until=msg.deadline)
        await ctx.send(sender, proposal)

    async def _on_counter_offer(self, ctx: Context, sender: str, msg: CounterOffer) -> None:
        state = self._open_state(sender, msg.negotiation_id)
        now = self.clock.now()
        if now > state["deadline"] or msg.round > state["max_rounds"]:
            state["status"] = "rejected"
            self._save(sender, msg.negotiation_id, state)
            reason = "deadline passed" if now > state["deadline"] else "too many rounds"
            await ctx.send(sender, Reject(negotiation_id=msg.negotiation_id, reason=reason))
            return
        view = self._view(state, msg.round, msg.price)
        our_next = self.policy.concession.offer(state["opening"], state["reservation"], view, now)
        if self.policy.acceptance.accepts("seller", msg.price, our_next, state["reservation"]):
            self._agree(sender, msg.negotiation_id, state, msg.price)
            await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))
            return
        state["our_last"] = our_next
        self._save(sender, msg.negotiation_id, state)
        proposal = Proposal(
            negotiation_id=msg.negotiation_id, price=our_next, round=msg.round, valid_until=state["deadline"]
        )
        await ctx.send(sender, proposal)

    async def _on_accept(self, ctx: Context, sender: str, msg: Accept) -> None:
        state = self._open_state(sender, msg.negotiation_id)
        if msg.price != state.get("our_last") or self.clock.now() > state["deadline"]:
            await ctx.send(sender, Reject(negotiation_id=msg.negotiation_id, reason="offer no longer valid"))
            return
        self._agree(sender, msg.negotiation_id, state, msg.price)
        await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))

    async def _on_reject(self, ctx: Context, sender: str, msg: Reject) -> None:
        state = self.negotiation_state(sender, msg.negotiation_id)
        if state is not None:
            state["status"] = "withdrawn" if state["status"] == "agreed" else "rejected"
            self._save(sender, msg.negotiation_id, state)

    def _open_state(self, buyer: str, negotiation_id: str) -> dict[str, Any]:
        state = self.negotiation_state(buyer, negotiation_id)
        if state is None or state["status"] != "open":
            raise Rejected(ErrorCode.REJECTED, "no open negotiation with that id")
        return state

    def _agree(self, buyer: str, negotiation_id: str, state: dict[str, Any], price: int) -> None:
        state.update(status="agreed", price=price)
        self._save(buyer, negotiation_id, state)
        deal = {"buyer": buyer, "price": price, "job": state["job"]}
        self.store.put_job(negotiation_id, state["job"]["kind"], "agreed", deal, self.clock.now())

    async def _on_inference(self, ctx: Context, sender: str, msg: InferenceRequest) -> None:
        quote = self.pricing.quote(JobSpec(kind="inference", model_id=msg.model_id, units=max(len(msg.inputs), 1)))
        if quote is None:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.model_id} not offered")
        if msg.price < quote[1]:
            raise Rejected(ErrorCode.REJECTED, "price below this seller's floor")
        outputs = await self.infer(msg)
        result = InferenceResult(
            job_id=msg.job_id, model_id=msg.model_id, outputs=outputs, output_commitment=commit_outputs(outputs)
        )
        self.store.put_job(msg.job_id, "inference", "done", {"buyer": sender, "price": msg.price}, self.clock.now())
        await ctx.send(sender, result)

    async def _on_training(self, ctx: Context, sender: str, msg: TrainingRequest) -> None:
        raise Rejected(ErrorCode.REJECTED, "this seller does not train")
