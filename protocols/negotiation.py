"""Contract-net negotiation messages: call for proposals, proposals, counteroffers, accept and reject."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


class JobSpec(Model):
    """What is being bought: the job kind (inference or training), the model and how many units."""

    kind: str
    model_id: str
    units: int


class CallForProposals(Model):
    """A buyer asks a seller to bid on a job below a budget ceiling (base units) before a deadline (unix s)."""

    negotiation_id: str
    job: JobSpec
    max_price: int
    deadline: int
    max_rounds: int


class Proposal(Model):
    """A seller's offer (base units) for a negotiation round; void after valid_until (unix s)."""

    negotiation_id: str
    price: int
    round: int
    valid_until: int


class CounterOffer(Model):
    """A buyer's counter price (base units) for the next round."""

    negotiation_id: str
    price: int
    round: int


class Accept(Model):
    """Agreement to trade at `price`; a seller echoes the buyer's Accept to confirm the deal."""

    negotiation_id: str
    price: int
    round: int


class Reject(Model):
    """The negotiation ends without a deal; `reason` says why (deadline, rounds, price)."""

    negotiation_id: str
    reason: str


SPEC = ProtocolSpecification(
    name="agora-negotiation",
    version="1.0.0",
    interactions={
        CallForProposals: {Proposal, Reject, ErrorReply},
        CounterOffer: {Proposal, Accept, Reject, ErrorReply},
        Accept: {Accept, Reject, ErrorReply},
        Proposal: set(),
        Reject: set(),
    },
    roles={
        "buyer": {Proposal, Accept, Reject},
        "seller": {CallForProposals, CounterOffer, Accept, Reject},
    },
)
"""Roles: a buyer receives Proposal/Accept/Reject; a seller receives CFP/CounterOffer/Accept/Reject."""
