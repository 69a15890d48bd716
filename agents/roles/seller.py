"""The model seller: serves paid PyTorch inference, stands by its answers on chain, and fine-tunes for escrow.

Composition: catalogue + negotiation (seller side) + channel payee + inference provider + attester +
escrow provider + control. Prices are per call (inference) and per job (training), in base units.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.artifacts import ArtifactFetcher, ArtifactSharing
from agents.capabilities.catalogue import TrainingTerms
from agents.capabilities.control import Command, Empty
from agents.capabilities.escrow import EscrowProvider
from agents.capabilities.federated.sponsor import FederatedSponsor, SponsoredJob, Sponsorship
from agents.capabilities.inference import Attester, InferenceProvider
from agents.capabilities.kit import compose
from agents.capabilities.payment import ExpiryClaims
from agents.capabilities.validation import DisputeVoter, Recomputer
from agents.offload import offload
from agents.roles.base import RoleOptions, role_parts
from agents.roles.selling import sell_catalogue
from agents.settings import AgentSettings
from marketplace.ml import (
    ModelKind,
    ensure_deterministic,
    fine_tune,
    load_model,
    make_interactions,
    split,
    train_base_model,
)

ROLE = "seller"


class ModelOffer(BaseModel):
    """A model a seller serves: its id, kind, price per call (base units) and optional parent."""

    id: str
    kind: ModelKind
    price_per_call: int = Field(gt=0)
    reserve_price: int = Field(gt=0)
    parent: str | None = None
    royalty_bps: int = Field(default=0, ge=0, le=5_000)
    """Share of each payment routed to the parent's lineage."""
    fine_tune_epochs: int = Field(default=0, ge=0)
    """>0: the seller builds this model by fine-tuning `parent` on its own data."""


class SellerOptions(RoleOptions):
    """A seller's terms besides its models: training prices, royalty to parents, claim policy, honesty."""

    training_price: int | None = None
    """Per fine-tuning job (base units); None: this seller does not train."""
    training_floor: int | None = None
    child_royalty_bps: int = 1_000
    dishonest_rate: float = 0.0
    claim_threshold: int | None = None
    claim_before_expiry: ExpiryClaims | None = ExpiryClaims()
    """Claim each channel within a margin of its expiry (on by default); None claims only by threshold or command."""


class BuildModels(BaseModel):
    """Models to train (or fine-tune from a parent) and publish, with the world seed that fixes their data."""

    models: list[ModelOffer]
    world_seed: int


class Sponsor(BaseModel):
    """Start a federated job on a fresh model, priced per call like the seller's other models."""

    sponsorship: Sponsorship
    price_per_call: int
    reserve_price: int


class FederatedRefunds(BaseModel):
    """What the sponsor took back from federated jobs past their claim window (base units)."""

    amounts: list[int]


BUILD_MODELS = Command("build_models", BuildModels, Empty)
SPONSOR_FEDERATED = Command("sponsor_federated", Sponsor, SponsoredJob)
REFUND_FEDERATED = Command("refund_federated", Empty, FederatedRefunds)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A model seller built from plain options (see SellerOptions)."""
    opts = SellerOptions.model_validate(options)
    parts = role_parts(ROLE, settings, deps, opts)
    agent, settlement = parts.agent, parts.settlement
    terms = None
    if opts.training_price is not None:
        floor = opts.training_floor if opts.training_floor is not None else opts.training_price
        terms = TrainingTerms(opts.training_price, floor, opts.child_royalty_bps)
    sale = sell_catalogue(parts, terms, opts.claim_threshold, opts.claim_before_expiry)
    catalogue, payee = sale.catalogue, sale.payee
    provider = InferenceProvider(agent, catalogue, payee, opts.dishonest_rate, opts.seed)
    attester = Attester(agent, settlement, provider)
    training = EscrowProvider(agent, settlement, catalogue, opts.seed)
    voter = DisputeVoter(agent, settlement, Recomputer(agent, settlement))  # a staked seller may sit on a committee
    sponsor = FederatedSponsor(agent, settlement, catalogue)
    sharing = ArtifactSharing(agent, settlement, catalogue)
    artifacts = ArtifactFetcher(agent, settlement)

    async def build_models(args: BuildModels) -> Empty:
        ensure_deterministic()
        for offer in args.models:
            seed = _seed(args.world_seed, offer.id)
            if offer.parent is not None:
                parent = await settlement.models.get(offer.parent)
                base = load_model(await artifacts.weights(parent), parent.content_hash)
                own = make_interactions(base.spec, 4_000, seed=seed)  # type: ignore[arg-type]  # parents are recommenders
                epochs = max(offer.fine_tune_epochs, 1)
                model, _ = await offload(fine_tune, base, split(own, 0.1, seed)[0], epochs=epochs, lr=0.01, seed=seed)
            else:
                model, _ = await offload(train_base_model, offer.kind, seed=seed)
            prices = (offer.price_per_call, offer.reserve_price)
            await catalogue.publish(offer.id, model, prices, parent=offer.parent, royalty_bps=offer.royalty_bps)
        return Empty()

    async def sponsor_federated(args: Sponsor) -> SponsoredJob:
        return await sponsor.sponsor(args.sponsorship, (args.price_per_call, args.reserve_price))

    async def refund_federated(_: Empty) -> FederatedRefunds:
        return FederatedRefunds(amounts=[r.amount for r in await sponsor.refund()])

    parts.control.handle(BUILD_MODELS, build_models)
    parts.control.handle(SPONSOR_FEDERATED, sponsor_federated)
    parts.control.handle(REFUND_FEDERATED, refund_federated)
    return compose(
        agent, parts.control, catalogue, sale.negotiation, payee, provider, attester, training, voter, sharing, sponsor
    )
