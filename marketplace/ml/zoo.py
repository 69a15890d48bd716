"""Model zoo: the small PyTorch models agora's markets trade, built deterministically from a spec and a seed."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

import torch
from torch import nn

from marketplace.ml.blobs import canonical_json

ModelKind: TypeAlias = Literal["recommender", "classifier"]
MODEL_KINDS: tuple[ModelKind, ...] = ("recommender", "classifier")

# Specs arrive over the wire inside cards and artifacts; bound every size so a hostile spec cannot make a
# receiver allocate gigabytes before anything else is checked.
_MAX_DIM = 65_536
_MAX_PARAMETERS = 4_000_000


class SpecError(ValueError):
    """A model spec is unknown, malformed or out of the allowed size range."""


@dataclass(frozen=True)
class RecommenderSpec:
    """Hyperparameters of the two-tower recommender (user tower · item tower → score)."""

    num_users: int = 256
    num_items: int = 1024
    embedding_dim: int = 32
    hidden_dim: int = 128
    kind: Literal["recommender"] = "recommender"


@dataclass(frozen=True)
class ClassifierSpec:
    """Hyperparameters of the MLP classifier (features → class logits)."""

    num_features: int = 16
    hidden_dim: int = 64
    num_classes: int = 4
    kind: Literal["classifier"] = "classifier"


ModelSpec: TypeAlias = RecommenderSpec | ClassifierSpec


def default_spec(kind: ModelKind) -> ModelSpec:
    """Return the default spec of a model kind (what the demo sellers serve)."""
    if kind == "recommender":
        return RecommenderSpec()
    if kind == "classifier":
        return ClassifierSpec()
    raise SpecError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


def spec_to_dict(spec: ModelSpec) -> dict[str, int | str]:
    """Return the spec as a plain dict (wire and card form)."""
    return dict(asdict(spec))


def spec_from_dict(data: Mapping[str, object]) -> ModelSpec:
    """Parse and validate a spec dict received from elsewhere; raise SpecError with the reason."""
    kind = data.get("kind")
    cls: type[RecommenderSpec] | type[ClassifierSpec]
    if kind == "recommender":
        cls = RecommenderSpec
    elif kind == "classifier":
        cls = ClassifierSpec
    else:
        raise SpecError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    fields = {name for name in cls.__dataclass_fields__ if name != "kind"}
    unknown = set(data) - fields - {"kind"}
    if unknown:
        raise SpecError(f"unknown {kind} spec fields: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name in sorted(fields & set(data)):
        value = data[name]
        # bool is an int subclass; a spec field of True is a bug on the sender's side, not 1.
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_DIM:
            raise SpecError(f"spec field {name!r} must be an integer in [1, {_MAX_DIM}], got {value!r}")
        values[name] = value
    spec = cls(**values)
    if parameter_count(spec) > _MAX_PARAMETERS:
        raise SpecError(f"spec describes {parameter_count(spec)} parameters, over the limit of {_MAX_PARAMETERS}")
    return spec


@functools.lru_cache(maxsize=64)  # pure, and on the per-call inference path
def spec_id(spec: ModelSpec) -> str:
    """Return a sha256 (0x hex) of the spec's canonical JSON, naming an architecture independent of weights."""
    return "0x" + hashlib.sha256(canonical_json(spec_to_dict(spec))).hexdigest()


def parameter_count(spec: ModelSpec) -> int:
    """Return how many parameters a model built from `spec` has, without building it."""
    if isinstance(spec, RecommenderSpec):
        d, h = spec.embedding_dim, spec.hidden_dim
        tower = d * h + h + h * d + d
        return (spec.num_users + spec.num_items) * d + 2 * tower
    f, h, c = spec.num_features, spec.hidden_dim, spec.num_classes
    return f * h + h + h * h + h + h * c + c


def _tower(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))


class TwoTowerRecommender(nn.Module):
    """Scores (user, item) pairs as the dot product of a user tower and an item tower; returns logits."""

    def __init__(self, spec: RecommenderSpec) -> None:
        super().__init__()
        self.spec = spec
        self.user_embedding = nn.Embedding(spec.num_users, spec.embedding_dim)
        self.item_embedding = nn.Embedding(spec.num_items, spec.embedding_dim)
        self.user_tower = _tower(spec.embedding_dim, spec.hidden_dim)
        self.item_tower = _tower(spec.embedding_dim, spec.hidden_dim)
        # Small embeddings keep initial logits near 0, so an untrained model scores ~0.5 everywhere.
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)

    def forward(self, user_ids: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Return one logit per (user_ids[i], item_ids[i]) pair, shape [batch]."""
        users: torch.Tensor = self.user_tower(self.user_embedding(user_ids))
        items: torch.Tensor = self.item_tower(self.item_embedding(item_ids))
        return (users * items).sum(dim=-1)


class MLPClassifier(nn.Module):
    """A two-hidden-layer MLP mapping feature vectors to class logits."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(
            nn.Linear(spec.num_features, spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, spec.num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return class logits, shape [batch, num_classes]."""
        out: torch.Tensor = self.layers(features)
        return out


AgoraModel: TypeAlias = TwoTowerRecommender | MLPClassifier


def build_model(spec: ModelSpec | ModelKind, seed: int) -> AgoraModel:
    """Build a freshly initialised model; the same spec and seed always give bit-identical weights."""
    resolved = default_spec(spec) if isinstance(spec, str) else spec
    # fork_rng keeps the caller's global RNG untouched while nn's default initialisers draw from it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(resolved, RecommenderSpec):
            return TwoTowerRecommender(resolved)
        return MLPClassifier(resolved)
