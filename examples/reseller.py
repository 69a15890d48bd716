"""A reseller composed from capabilities: buys inference from one seller and resells it with a markup per call.

Negotiation seller + channel payee towards its buyers, negotiation buyer + channel payer towards its upstream.
The resold model is a ModelRegistry child of the upstream one, so royalties flow upstream on every claim.
Outputs are re-committed under the resold id (what buyers asked for and verify) once the upstream's own
commitment checks out: the reseller stands by what it sells.
"""

import hashlib
from typing import Any

from agents import AgentDeps, AgentSettings, AgoraAgent, BuyerLimits, Rejected
from agents.capabilities.catalogue import CataloguePricing, ModelCatalogue
from agents.capabilities.control import Command, Empty
from agents.capabilities.kit import Capability, Handler, Handlers, compose
from agents.capabilities.negotiation import NegotiationBuyer, NegotiationSeller
from agents.capabilities.payment import ChannelPayee, ChannelPayer
from agents.roles.base import RoleOptions, role_parts
from agents.roles.seller import CLAIM, Claimed
from protocols.cards import Offering
from protocols.commitment import output_commitment, verify_output_commitment
from protocols.errors import ErrorCode
from protocols.jobs import SPEC, InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec

SOURCE = Command("source", Empty, Empty)
"""Buy `calls` calls from the upstream seller through one channel, then list the resold model."""


class ResellerOptions(RoleOptions):
    """The upstream seller (agent address, model id), the resold model's id, calls to buy, limits and markup."""

    upstream: str
    upstream_model: str
    resold_id: str
    calls: int
    max_per_call: int
    markup: int
    royalty_bps: int = 500


class Relay(Capability):
    """InferenceRequest, in the jobs protocol's seller role, answered by `serve`."""

    def __init__(self, agent: AgoraAgent, serve: Handler) -> None:
        super().__init__(agent)
        self.serve = serve

    def handlers(self) -> tuple[Handlers, ...]:
        """The seller role's InferenceRequest."""
        return (Handlers(SPEC, "seller", {InferenceRequest: self.serve}),)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A reseller built from plain options (see ResellerOptions); its card says `seller`, as buyers search."""
    opts = ResellerOptions.model_validate(options)
    upstream = opts.upstream_model

    def offerings() -> list[Offering]:
        entries = catalogue.entries.values()
        return [Offering(model_id=e.model_id, job_kind="inference", price_per_unit=e.price_per_call) for e in entries]

    parts = role_parts("seller", settings, deps, opts, offerings)
    agent, settlement, catalogue = parts.agent, parts.settlement, ModelCatalogue(parts.agent, parts.settlement)
    selling, buying = NegotiationSeller(agent, CataloguePricing(catalogue)), NegotiationBuyer(agent, listen=False)

    async def price_of(buyer: str, token: int) -> int:  # resold at one fixed price: every deal is at the list price
        return next(e.price_per_call for e in catalogue.entries.values() if e.chain_id == token)

    payee, payer = ChannelPayee(agent, settlement, price_of), ChannelPayer(agent, settlement)
    payee.accepts_model = lambda token: catalogue.by_chain_id(token) is not None

    async def source(_: Empty) -> Empty:
        listed = await settlement.models.get(upstream)
        job = JobSpec(kind="inference", model_id=upstream, units=opts.calls)
        limits = BuyerLimits(opening=0, budget=opts.max_per_call * opts.calls)
        deal = await buying.negotiate([opts.upstream], job, limits)
        if deal is None:
            raise Rejected(ErrorCode.REJECTED, "the upstream seller would not sell within the limits")
        await payer.open(opts.upstream, listed.creator, deal.price, 3_600, listed.chain_id)
        price = deal.price // opts.calls + opts.markup
        content = "0x" + hashlib.sha256(f"{agent.address}:{opts.resold_id}".encode()).hexdigest()  # unique per token
        await catalogue.register(opts.resold_id, listed.kind, content, (price, price), upstream, opts.royalty_bps)
        return Empty()

    async def serve(ctx: Any, sender: str, msg: InferenceRequest) -> None:
        entry = catalogue.get(msg.model_id)
        if entry is None:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.model_id} not sold here")
        payee.use_credit(sender, msg.job_id, entry.chain_id)
        cost, job = entry.price_per_call - opts.markup, f"{sender}/{msg.job_id}"  # buyers' job ids may collide upstream
        await payer.pay(max(int(channel) for channel, _ in payer.channels.items()), cost, job)
        ask = InferenceRequest(job_id=job, model_id=upstream, inputs=msg.inputs, price=cost)
        got = await agent.request(opts.upstream, ask, InferenceResult)
        if not verify_output_commitment(upstream, msg.inputs, got.outputs, got.output_commitment):
            raise Rejected(ErrorCode.REJECTED, "the upstream's outputs do not match its commitment")
        commitment = output_commitment(msg.model_id, msg.inputs, got.outputs)
        result = InferenceResult(
            job_id=msg.job_id, model_id=msg.model_id, outputs=got.outputs, output_commitment=commitment
        )
        await ctx.send(sender, result)

    async def claim(_: Empty) -> Claimed:
        await payee.claim()
        return Claimed(claims=[([(c.channel_id, c.amount) for c in claims], gas) for claims, gas in payee.claim_log])

    parts.control.handle(SOURCE, source)
    parts.control.handle(CLAIM, claim)
    return compose(agent, parts.control, catalogue, selling, payee, buying, payer, Relay(agent, serve))
