"""Ready-made agent factories for `agents.process` children (tests, demos, benchmarks)."""

from __future__ import annotations

from typing import Any

from uagents import Context

from agents.base import AgentDeps, AgoraAgent
from agents.policies import NegotiationPolicy, TimeDependentConcession, UnitPricing
from agents.roles.sdk import SellerAgent
from agents.settings import AgentSettings
from protocols.jobs import InferenceRequest, InferenceResult


def unit_seller(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A SellerAgent with UnitPricing(options["unit_price"], options["floor_unit_price"]) that echoes inputs."""

    class EchoSeller(SellerAgent):
        """A seller whose model returns its inputs."""

        async def infer(self, request: InferenceRequest) -> list[list[float]]:
            """Echo the inputs."""
            return request.inputs

    pricing = UnitPricing(int(options["unit_price"]), int(options["floor_unit_price"]))
    policy = NegotiationPolicy(concession=TimeDependentConcession(int(options.get("exponent", 1))))
    return EchoSeller(settings, deps, pricing=pricing, policy=policy)


def echo_responder(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A bare agent answering every InferenceRequest with its inputs (messaging benchmarks)."""
    agent = AgoraAgent(settings, deps)

    async def handle(ctx: Context, sender: str, msg: InferenceRequest) -> None:
        result = InferenceResult(job_id=msg.job_id, model_id=msg.model_id, outputs=msg.inputs, output_commitment="0x")
        await ctx.send(sender, result)

    agent.on_message(InferenceRequest, replies=InferenceResult)(handle)
    return agent
