"""A reseller composed from capabilities: buys inference from one seller and resells it with a markup per call.

It sells like any catalogue seller (negotiation, channel payee) and buys like any user (negotiation, channel
payer). The resold model is a ModelRegistry child of the upstream one, so royalties flow upstream on every
claim. Outputs are re-committed under the resold id once the upstream's own commitment checks out, and only
then is the buyer's credit spent.
"""

import hashlib
from typing import Any

from agents import AgentDeps, AgentSettings, AgoraAgent, Rejected
from agents.capabilities.control import Command, Empty
from agents.capabilities.inference import prepay_calls
from agents.capabilities.kit import OnMessages, compose
from agents.capabilities.negotiation import NegotiationBuyer
from agents.capabilities.payment import ChannelPayer
from agents.roles.base import RoleOptions, role_parts
from agents.roles.selling import sell_catalogue
from protocols.commitment import output_commitment, verify_output_commitment
from protocols.errors import ErrorCode
from protocols.jobs import SPEC, InferenceRequest, InferenceResult

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


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A reseller built from plain options (see ResellerOptions); its card says `seller`, as buyers search."""
    opts = ResellerOptions.model_validate(options)
    parts = role_parts("seller", settings, deps, opts)
    agent, sale, upstream = parts.agent, sell_catalogue(parts), opts.upstream_model
    buying, payer = NegotiationBuyer(agent, listen=False), ChannelPayer(agent, parts.settlement)
    channel: list[int] = []

    async def source(_: Empty) -> Empty:
        bought, cost = await prepay_calls(buying, payer, opts.upstream, upstream, opts.calls, opts.max_per_call)
        channel.append(bought)
        kind, price = (await parts.settlement.models.get(upstream)).kind, cost + opts.markup
        content = "0x" + hashlib.sha256(f"{agent.address}:{opts.resold_id}".encode()).hexdigest()  # one per token
        await sale.catalogue.register(opts.resold_id, kind, content, (price, price), upstream, opts.royalty_bps)
        return Empty()

    async def serve(ctx: Any, sender: str, msg: InferenceRequest) -> None:
        entry = sale.catalogue.get(msg.model_id)
        model = entry.chain_id if entry else 0  # an unknown model was never paid for
        credit = sale.payee.check_credit(sender, msg.job_id, model)  # spent only once the answer is in hand
        cost, job = credit.amount - opts.markup, f"{sender}/{msg.job_id}"  # buyers' job ids may collide upstream
        await payer.pay(channel[-1], cost, job)
        ask = InferenceRequest(job_id=job, model_id=upstream, inputs=msg.inputs, price=cost)
        got = await agent.request(opts.upstream, ask, InferenceResult)
        if not verify_output_commitment(upstream, msg.inputs, got.outputs, got.output_commitment):
            raise Rejected(ErrorCode.REJECTED, "the upstream's outputs do not match its commitment")
        sale.payee.use_credit(sender, msg.job_id, model)  # a concurrent copy of the request loses here
        mine = output_commitment(msg.model_id, msg.inputs, got.outputs)
        await ctx.send(
            sender, got.copy(update={"job_id": msg.job_id, "model_id": msg.model_id, "output_commitment": mine})
        )

    parts.control.handle(SOURCE, source)
    relay = OnMessages(agent, SPEC, "seller", {InferenceRequest: serve})
    return compose(agent, parts.control, sale.catalogue, sale.negotiation, sale.payee, buying, payer, relay)
