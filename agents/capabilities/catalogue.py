"""A seller's model catalogue: the models it serves, registered in ModelRegistry with their lineage.

The catalogue is a shared component of a seller agent (inference and training both use it). Its records
survive a restart: weights live in the agent's own blob store under their content hash, checked on load.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.base import AgoraAgent
from agents.capabilities.kit import Capability
from agents.settlement import Settlement, model_uri, to_bytes32
from agents.state import Record, Repository
from marketplace.chain import Lineage, ModelListing
from marketplace.ml import AgoraModel, InferenceRunner, ModelKind, load_model, serialize_model
from protocols.negotiation import JobSpec


class CatalogueEntry(Record):
    """A served model: its id, kind, token id, weights' content hash and per-call prices (base units)."""

    model_id: str
    kind: ModelKind
    chain_id: int
    content_hash: str
    price_per_call: int
    floor_per_call: int


@dataclass(frozen=True)
class TrainingTerms:
    """What a seller charges per fine-tuning job (base units) and routes to the parent of what it trains."""

    price: int
    floor: int
    child_royalty_bps: int = 1_000


class ModelCatalogue(Capability):
    """Served models by id; publishing registers them on chain and puts their weights in the blob store."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, training: TrainingTerms | None = None) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.training = training
        self.entries = Repository(agent.store, "catalogue", CatalogueEntry)
        self._runners: dict[str, InferenceRunner] = {}

    async def publish(
        self,
        model_id: str,
        model: AgoraModel,
        prices: tuple[int, int],
        parent: str | None = None,
        royalty_bps: int = 0,
        contributors: tuple[tuple[str, int], ...] = (),
    ) -> CatalogueEntry:
        """Store the weights, register the model (its parent and contributor shares) in ModelRegistry, and serve it."""
        artifact = serialize_model(model)
        self.agent.blobs.put(artifact.data, pin="catalogue")
        entry = await self.register(
            model_id, model.spec.kind, artifact.artifact_hash, prices, parent, royalty_bps, contributors
        )
        self._runners[model_id] = InferenceRunner(model)
        return entry

    async def register(
        self,
        model_id: str,
        kind: ModelKind,
        content_hash: str,
        prices: tuple[int, int],
        parent: str | None = None,
        royalty_bps: int = 0,
        contributors: tuple[tuple[str, int], ...] = (),
    ) -> CatalogueEntry:
        """Register a model in ModelRegistry (with its parent and contributors) and list it here, without weights
        (e.g. a resold one)."""
        lineage = Lineage(contributors=contributors)
        if parent is not None:
            own = self.entries.get(parent)  # a parent served here is this seller's, whoever else used the id
            listed = own.chain_id if own is not None else (await self.settlement.models.get(parent)).chain_id
            lineage = Lineage(parents=((listed, royalty_bps),), contributors=contributors)
        terms = ModelListing(
            content_hash=to_bytes32(content_hash),
            uri=model_uri(kind, model_id),
            price_per_call=prices[0],
            price_per_job=self.training.price if self.training else 0,
        )
        registered = await self.settlement.model_registry.register_model(terms, lineage)
        entry = CatalogueEntry(
            model_id=model_id,
            kind=kind,
            chain_id=registered.model_id,
            content_hash=content_hash,
            price_per_call=prices[0],
            floor_per_call=prices[1],
        )
        self.entries.put(model_id, entry)
        return entry

    async def reprice(self, model_id: str, price_per_call: int) -> CatalogueEntry:
        """Sell a served model at a new list price per call from now on (never below its reserve); the price hint
        in ModelRegistry follows. Quotes use it at once; the registry card shows it once republished."""
        entry = self.entries.get(model_id)
        if entry is None:
            raise KeyError(f"model {model_id!r} is not served here")
        if price_per_call < entry.floor_per_call:
            raise ValueError(f"price {price_per_call} is below the reserve of {entry.floor_per_call}")
        per_job = self.training.price if self.training else 0
        await self.settlement.model_registry.set_price_hints(entry.chain_id, price_per_call, per_job)
        entry.price_per_call = price_per_call
        self.entries.put(model_id, entry)
        return entry

    def get(self, model_id: str) -> CatalogueEntry | None:
        """The served model with this id."""
        return self.entries.get(model_id)

    def by_chain_id(self, chain_id: int) -> CatalogueEntry | None:
        """The served model with this ModelRegistry token id."""
        return next((e for e in self.entries.values() if e.chain_id == chain_id), None)

    def model_for(self, wanted: str) -> CatalogueEntry | None:
        """The served model named `wanted`, or the cheapest served model of kind `wanted`."""
        entry = self.entries.get(wanted)
        if entry is not None:
            return entry
        of_kind = [e for e in self.entries.values() if e.kind == wanted]
        return min(of_kind, key=lambda e: (e.price_per_call, e.model_id)) if of_kind else None

    def runner(self, model_id: str) -> InferenceRunner:
        """The inference runner of a served model (weights loaded from the blob store after a restart)."""
        if model_id not in self._runners:
            entry = self.entries.get(model_id)
            if entry is None:
                raise KeyError(f"model {model_id!r} is not served here")
            data = self.agent.blobs.get(entry.content_hash)
            self._runners[model_id] = InferenceRunner(load_model(data, entry.content_hash))
        return self._runners[model_id]

    def model(self, model_id: str) -> AgoraModel:
        """The weights of a served model."""
        return self.runner(model_id).model


class CataloguePricing:
    """Quotes by job: inference on a model id or kind (per call × units), training per job."""

    def __init__(self, catalogue: ModelCatalogue) -> None:
        self.catalogue = catalogue

    async def quote(self, job: JobSpec) -> tuple[int, int] | None:
        """(opening, reservation) for the job, or None if not offered."""
        served = self.catalogue.model_for(job.model_id)
        if served is None or job.units <= 0:
            return None
        if job.kind == "training" and self.catalogue.training is not None:
            return self.catalogue.training.price * job.units, self.catalogue.training.floor * job.units
        if job.kind == "inference":
            return served.price_per_call * job.units, served.floor_per_call * job.units
        return None
