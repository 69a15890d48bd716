"""Building blocks for custom agents: a seller that negotiates and answers inference with `infer`, and a buyer.

    class Doubler(SellerAgent):
        async def infer(self, request): return [[2 * x for x in row] for row in request.inputs]

Both are AgoraAgents composed from capabilities; add more with `agents.capabilities.kit.compose`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from uagents import Context

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.kit import Capability, Handlers, compose
from agents.capabilities.negotiation import BuyerLimits, Deal, NegotiationBuyer, NegotiationSeller
from agents.mods import Rejected
from agents.policies import NegotiationPolicy, PricingPolicy
from agents.settings import AgentSettings
from protocols import jobs
from protocols.commitment import CommitmentError, output_commitment, quantize_outputs
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec


class _Infer(Capability):
    """Answers InferenceRequest at no less than the seller's floor, with the project's output commitment."""

    def __init__(self, agent: SellerAgent) -> None:
        super().__init__(agent)
        self.seller = agent

    def handlers(self) -> Iterable[Handlers]:
        return (Handlers(jobs.SPEC, "seller", {InferenceRequest: self._on_inference}),)

    async def _on_inference(self, ctx: Context, sender: str, msg: InferenceRequest) -> None:
        job = JobSpec(kind="inference", model_id=msg.model_id, units=max(len(msg.inputs), 1))
        quote = await self.seller.pricing.quote(job)
        if quote is None:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.model_id} not offered")
        if msg.price < quote[1]:
            raise Rejected(ErrorCode.REJECTED, "price below this seller's floor")
        try:
            outputs = quantize_outputs(await self.seller.infer(msg))
            commitment = output_commitment(msg.model_id, msg.inputs, outputs)
        except CommitmentError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        result = InferenceResult(
            job_id=msg.job_id, model_id=msg.model_id, outputs=outputs, output_commitment=commitment
        )
        self.agent.store.put_job(msg.job_id, "inference", "done", {"buyer": sender, "price": msg.price}, ctx_now(self))
        await ctx.send(sender, result)


def ctx_now(capability: Capability) -> float:
    """The capability's agent clock, now."""
    return capability.agent.clock.now()


class SellerAgent(AgoraAgent):
    """Sells inference: negotiates by policy and answers InferenceRequest via `infer` (override it)."""

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
        self.negotiation = NegotiationSeller(self, pricing, policy)
        compose(self, self.negotiation, _Infer(self))

    async def infer(self, request: InferenceRequest) -> list[list[float]]:
        """Run the model on the inputs; override in your seller (the default refuses)."""
        raise Rejected(ErrorCode.REJECTED, "this seller does not run inference")


class BuyerAgent(AgoraAgent):
    """Buys jobs: `await buyer.negotiate(sellers, job, BuyerLimits(...))` returns the best Deal or None."""

    def __init__(
        self, settings: AgentSettings, deps: AgentDeps | None = None, *, policy: NegotiationPolicy | None = None
    ) -> None:
        super().__init__(settings, deps)
        self.negotiation = NegotiationBuyer(self, policy)
        compose(self, self.negotiation)

    async def negotiate(self, sellers: Sequence[str], job: JobSpec, limits: BuyerLimits) -> Deal | None:
        """Run a contract-net negotiation; the deal price never exceeds `limits.budget`."""
        return await self.negotiation.negotiate(sellers, job, limits)
