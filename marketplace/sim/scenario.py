"""Scenario files: who takes part in an economy run, with which seeds, prices and faults."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

AGT = 10**18


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelOffer(_Strict):
    """A model a seller serves: its id, kind, price per call (base units) and optional parent."""

    id: str
    kind: Literal["recommender", "classifier"]
    price_per_call: int = Field(gt=0)
    reserve_price: int = Field(gt=0)
    parent: str | None = None
    royalty_bps: int = Field(default=0, ge=0, le=5_000)
    """Share of each payment routed to the parent's lineage."""
    fine_tune_epochs: int = Field(default=0, ge=0)
    """>0: the seller builds this model by fine-tuning `parent` on its own data at start-up."""


class SellerSpec(_Strict):
    """One model seller."""

    name: str
    models: list[ModelOffer]
    training_price: int = Field(default=50 * AGT, gt=0)
    training_floor: int = Field(default=30 * AGT, gt=0)
    dishonest_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of inference calls answered with a wrong output (to exercise validation)."""
    claim_threshold: int | None = Field(default=None, gt=0)
    """Claim vouchers on chain whenever this much is unclaimed; None: one claimMany at settlement."""


class Fault(_Strict):
    """An injected failure: stop an agent when a phase begins."""

    kind: Literal["kill"]
    agent: str
    phase: Literal["inference", "training", "settlement"]


class Scenario(_Strict):
    """A whole economy run."""

    name: str
    seed: int = 7
    sellers: list[SellerSpec]
    users: int = Field(ge=1, le=500)
    advertisers: int = Field(ge=0, le=50)
    validators: int = Field(ge=1, le=50)
    calls_per_user: int = Field(ge=1, le=1_000)
    user_budget: int = Field(gt=0)
    """AGT (base units) each user deposits for inference."""
    user_opening_per_call: int = Field(gt=0)
    user_max_per_call: int = Field(gt=0)
    sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Fraction of paid inference calls a validator re-executes."""
    channel_ttl: int = Field(default=3_600, gt=0)
    training_ttl: int = Field(default=1_800, gt=0)
    training_opening: int = Field(default=20 * AGT, gt=0)
    training_budget: int = Field(default=60 * AGT, gt=0)
    training_epochs: int = Field(default=3, ge=1, le=20)
    training_min_score: int = Field(default=600_000, ge=0, le=1_000_000)
    """Least held-out AUC (millionths) for the evaluator to pay the seller."""
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> Scenario:
        model_ids = [m.id for s in self.sellers for m in s.models]
        if len(set(model_ids)) != len(model_ids):
            raise ValueError("model ids must be unique across sellers")
        for seller in self.sellers:
            for offer in seller.models:
                if offer.parent is not None and offer.parent not in model_ids:
                    raise ValueError(f"model {offer.id!r}: parent {offer.parent!r} is not offered by any seller")
                if offer.reserve_price > offer.price_per_call:
                    raise ValueError(f"model {offer.id!r}: reserve_price above price_per_call")
        names = {s.name for s in self.sellers}
        for fault in self.faults:
            if fault.agent not in names:
                raise ValueError(f"fault targets unknown agent {fault.agent!r} (sellers: {', '.join(sorted(names))})")
        return self

    @property
    def agent_count(self) -> int:
        """How many agents take part."""
        return len(self.sellers) + self.users + self.advertisers + self.validators


def load_scenario(path: Path | None = None) -> Scenario:
    """Read a scenario YAML file; without a path, the embedded default scenario."""
    if path is None:
        text = resources.files("marketplace.sim.scenarios").joinpath("default.yaml").read_text()
    else:
        text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path or 'default scenario'}: expected a mapping at the top level")
    return Scenario.model_validate(data)
