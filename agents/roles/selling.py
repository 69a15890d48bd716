"""What every agent selling catalogue models shares: a catalogue, the seller side of negotiation, a channel payee
that charges each buyer its agreed price, the card's offerings, and the `claim` and `claim_due` commands.

Used by the model seller role and by custom sellers (see examples/reseller.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from agents.capabilities.catalogue import CataloguePricing, ModelCatalogue, TrainingTerms
from agents.capabilities.control import Command, Empty
from agents.capabilities.negotiation import NegotiationSeller
from agents.capabilities.payment import ChannelPayee, ExpiryClaims
from agents.mods import Rejected
from agents.roles.base import RoleParts
from protocols.cards import Offering
from protocols.errors import ErrorCode


class Claimed(BaseModel):
    """Every claimMany this seller sent: (channel id, amount) pairs and the gas of each transaction."""

    claims: list[tuple[list[tuple[int, int]], int]]


CLAIM = Command("claim", Empty, Claimed)
CLAIM_DUE = Command("claim_due", Empty, Claimed)
"""Run the expiry watch's check once: claim every channel within the claim margin of its expiry."""


@dataclass(frozen=True)
class Sale:
    """The selling capabilities of one agent (include all three with `compose`)."""

    catalogue: ModelCatalogue
    negotiation: NegotiationSeller
    payee: ChannelPayee


def sell_catalogue(
    parts: RoleParts,
    training: TrainingTerms | None = None,
    claim_threshold: int | None = None,
    expiry_claims: ExpiryClaims | None = ExpiryClaims(),  # noqa: B008 - never mutated
) -> Sale:
    """Give the agent under construction a catalogue it sells per call (and per training job, with `training`);
    its payee claims each channel before expiry unless `expiry_claims` is None."""
    catalogue = ModelCatalogue(parts.agent, parts.settlement, training)
    negotiation = NegotiationSeller(parts.agent, CataloguePricing(catalogue))

    async def price_of(buyer: str, model_chain_id: int) -> int:
        served = catalogue.by_chain_id(model_chain_id)
        ids = {served.model_id, served.kind} if served else set()
        deal = negotiation.agreed_price(buyer, "inference", ids)
        if deal is None:
            raise Rejected(ErrorCode.REJECTED, "no agreed inference price with this buyer for that model")
        return deal.price // max(deal.units, 1)

    payee = ChannelPayee(parts.agent, parts.settlement, price_of, claim_threshold, expiry_claims)
    payee.accepts_model = lambda chain_id: catalogue.by_chain_id(chain_id) is not None

    def offerings() -> list[Offering]:
        entries = catalogue.entries.values()
        listed = [Offering(model_id=e.model_id, job_kind="inference", price_per_unit=e.price_per_call) for e in entries]
        if training is None:
            return listed
        return listed + [
            Offering(model_id=e.model_id, job_kind="training", price_per_unit=training.price, unit="job")
            for e in entries
            if e.kind == "recommender"
        ]

    def claimed() -> Claimed:
        return Claimed(claims=[([(c.channel_id, c.amount) for c in claims], gas) for claims, gas in payee.claim_log])

    async def claim(_: Empty) -> Claimed:
        await payee.claim()
        return claimed()

    async def claim_due(_: Empty) -> Claimed:
        await payee.claim_due()
        return claimed()

    parts.offerings = offerings
    parts.control.handle(CLAIM, claim)
    parts.control.handle(CLAIM_DUE, claim_due)
    return Sale(catalogue, negotiation, payee)
