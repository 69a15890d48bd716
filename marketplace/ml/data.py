"""Synthetic, seeded datasets for the markets, and their content-addressed blob form.

Recommender data comes from a latent "world": every user and item has a hidden factor vector and items
have a popularity bias; a (user, item) pair is a positive interaction with probability
sigmoid(sharpness · u·v / sqrt(d) + bias). The world is fixed by `world_seed`, samples by `seed`, so a
base model trained on the general items and a fine-tune on an advertiser's catalogue items share the
same users and the same structure — which is why fine-tuning measurably helps on the catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, TypeAlias, TypeVar

import numpy as np
import torch

from marketplace.ml.blobs import (
    DEFAULT_MAX_BLOB_BYTES,
    MalformedBlob,
    check_blob,
    content_id,
    decode_bundle,
    encode_bundle,
)
from marketplace.ml.zoo import ClassifierSpec, ModelSpec, RecommenderSpec

_DATASET_FORMAT = "agora.dataset.v1"
_LATENT_DIM = 8
_SHARPNESS = 3.0
_CATALOGUE_SIZE = 64
_CLUSTERS = 8
_SCATTER = 0.3


class DatasetError(ValueError):
    """A dataset does not fit the model it is meant for (kind, id ranges, feature width, labels)."""


@dataclass(frozen=True, eq=False)
class InteractionDataset:
    """User–item interactions: int64 `user_ids` and `item_ids`, float32 0/1 `labels`, all of shape [n]."""

    user_ids: torch.Tensor
    item_ids: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class ClassificationDataset:
    """Labelled feature vectors: float32 `features` [n, num_features], int64 `labels` [n]."""

    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


Dataset: TypeAlias = InteractionDataset | ClassificationDataset
D = TypeVar("D", InteractionDataset, ClassificationDataset)


def base_items(spec: RecommenderSpec) -> range:
    """Item ids of the general catalogue a base recommender is trained on (the first three quarters)."""
    return range(0, spec.num_items - spec.num_items // 4)


def catalogue_items(spec: RecommenderSpec, index: int) -> range:
    """Item ids of advertiser catalogue `index`: disjoint slices of the last quarter, unseen by base training."""
    start = len(base_items(spec)) + index * _CATALOGUE_SIZE
    if index < 0 or start + _CATALOGUE_SIZE > spec.num_items:
        count = (spec.num_items - len(base_items(spec))) // _CATALOGUE_SIZE
        raise DatasetError(f"catalogue index {index} out of range; this spec has {count} catalogues")
    return range(start, start + _CATALOGUE_SIZE)


def _world(
    spec: RecommenderSpec, world_seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng([world_seed, 0x7265_63])
    # Users fall into taste segments and items into genres; individual factors scatter around their
    # cluster centre. Clustered structure is what lets a small model learn from a few thousand examples.
    segments = rng.standard_normal((_CLUSTERS, _LATENT_DIM))
    genres = rng.standard_normal((_CLUSTERS, _LATENT_DIM))
    users = segments[rng.integers(0, _CLUSTERS, spec.num_users)]
    users = users + _SCATTER * rng.standard_normal(users.shape)
    items = genres[rng.integers(0, _CLUSTERS, spec.num_items)]
    items = items + _SCATTER * rng.standard_normal(items.shape)
    bias = rng.normal(0.0, 0.5, spec.num_items)
    return users, items, bias


def make_interactions(
    spec: RecommenderSpec, n: int, seed: int, items: range | None = None, world_seed: int = 0
) -> InteractionDataset:
    """Sample `n` interactions of uniformly drawn users with items from `items` (default: base items)."""
    pool = base_items(spec) if items is None else items
    if n < 1 or len(pool) == 0 or pool.start < 0 or pool.stop > spec.num_items:
        raise DatasetError(f"cannot sample {n} interactions from items {pool} of a {spec.num_items}-item spec")
    user_factors, item_factors, bias = _world(spec, world_seed)
    rng = np.random.default_rng([seed, world_seed, 0x6E_74])
    users = rng.integers(0, spec.num_users, n)
    chosen = rng.integers(pool.start, pool.stop, n)
    affinity = (user_factors[users] * item_factors[chosen]).sum(axis=1) / math.sqrt(_LATENT_DIM)
    prob = 1.0 / (1.0 + np.exp(-(_SHARPNESS * affinity + bias[chosen])))
    labels = (rng.random(n) < prob).astype(np.float32)
    return InteractionDataset(
        user_ids=torch.from_numpy(users.astype(np.int64)),
        item_ids=torch.from_numpy(chosen.astype(np.int64)),
        labels=torch.from_numpy(labels),
    )


def make_classification(spec: ClassifierSpec, n: int, seed: int, world_seed: int = 0) -> ClassificationDataset:
    """Sample `n` points from Gaussian clusters around per-class centroids fixed by `world_seed`."""
    if n < 1:
        raise DatasetError(f"cannot sample {n} examples")
    centroids = np.random.default_rng([world_seed, 0x636C_73]).normal(0.0, 0.6, (spec.num_classes, spec.num_features))
    rng = np.random.default_rng([seed, world_seed, 0x6E_74])
    labels = rng.integers(0, spec.num_classes, n)
    features = centroids[labels] + rng.standard_normal((n, spec.num_features))
    return ClassificationDataset(
        features=torch.from_numpy(features.astype(np.float32)),
        labels=torch.from_numpy(labels.astype(np.int64)),
    )


def subset(dataset: D, index: torch.Tensor) -> D:
    """Return the examples at `index` (an int64 tensor) as a dataset of the same kind."""
    return type(dataset)(*(getattr(dataset, field.name)[index] for field in fields(dataset)))


def split(dataset: D, heldout_fraction: float, seed: int) -> tuple[D, D]:
    """Shuffle with `seed` and split into (train, held-out); both parts are non-empty."""
    n = len(dataset)
    heldout = round(n * heldout_fraction)
    if not 0.0 < heldout_fraction < 1.0 or not 0 < heldout < n:
        raise DatasetError(f"cannot hold out a fraction {heldout_fraction} of {n} examples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return subset(dataset, order[heldout:]), subset(dataset, order[:heldout])


def validate_dataset(dataset: Dataset, spec: ModelSpec) -> None:
    """Raise DatasetError unless `dataset` is the right kind for `spec` with every id and label in range."""
    if len(dataset) == 0:
        raise DatasetError("dataset is empty")
    if isinstance(spec, RecommenderSpec):
        if not isinstance(dataset, InteractionDataset):
            raise DatasetError("a recommender needs an interaction dataset")
        _check_range("user id", dataset.user_ids, spec.num_users)
        _check_range("item id", dataset.item_ids, spec.num_items)
        if not bool(((dataset.labels == 0) | (dataset.labels == 1)).all()):
            raise DatasetError("interaction labels must be 0 or 1")
        return
    if not isinstance(dataset, ClassificationDataset):
        raise DatasetError("a classifier needs a classification dataset")
    if dataset.features.shape[1] != spec.num_features:
        raise DatasetError(f"features have width {dataset.features.shape[1]}, the model needs {spec.num_features}")
    if not bool(torch.isfinite(dataset.features).all()):
        raise DatasetError("features contain NaN or infinity")
    _check_range("class label", dataset.labels, spec.num_classes)


def _check_range(what: str, values: torch.Tensor, upper: int) -> None:
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= upper:
        raise DatasetError(f"{what}s must lie in [0, {upper - 1}], found values in [{low}, {high}]")


@dataclass(frozen=True)
class DatasetBlob:
    """A dataset's canonical bytes and their content id (0x sha256), as sent between agents."""

    data: bytes
    content_id: str


def serialize_dataset(dataset: Dataset) -> DatasetBlob:
    """Encode a dataset to canonical bytes; equal datasets always give equal bytes and content id."""
    tensors: dict[str, torch.Tensor]
    if isinstance(dataset, InteractionDataset):
        kind = "interactions"
        tensors = {"user_ids": dataset.user_ids, "item_ids": dataset.item_ids, "labels": dataset.labels}
    else:
        kind = "classification"
        tensors = {"features": dataset.features, "labels": dataset.labels}
    data = encode_bundle({"format": _DATASET_FORMAT, "kind": kind}, tensors)
    return DatasetBlob(data=data, content_id=content_id(data))


def load_dataset(data: bytes, expected_id: str, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> Dataset:
    """Decode a dataset blob after checking its size and content id.

    Raises BlobTooLarge, BlobHashMismatch or MalformedBlob (all BlobError, a ValueError).
    """
    check_blob(data, expected_id, max_bytes)
    meta, tensors = decode_bundle(data)
    if meta.get("format") != _DATASET_FORMAT:
        raise MalformedBlob(f"not a dataset blob (format {meta.get('format')!r})")
    kind = meta.get("kind")
    if kind == "interactions":
        _expect(tensors, {"user_ids": torch.int64, "item_ids": torch.int64, "labels": torch.float32}, ndim=1)
        return InteractionDataset(tensors["user_ids"], tensors["item_ids"], tensors["labels"])
    if kind == "classification":
        _expect(tensors, {"features": torch.float32, "labels": torch.int64}, ndim=None)
        if tensors["features"].ndim != 2 or tensors["labels"].ndim != 1:
            raise MalformedBlob("classification blob needs 2-d features and 1-d labels")
        return ClassificationDataset(tensors["features"], tensors["labels"])
    raise MalformedBlob(f"unknown dataset kind {kind!r}")


def _expect(tensors: dict[str, torch.Tensor], fields: dict[str, torch.dtype], ndim: int | None) -> None:
    if set(tensors) != set(fields):
        raise MalformedBlob(f"dataset blob holds {sorted(tensors)}, expected {sorted(fields)}")
    lengths = {int(t.shape[0]) if t.ndim else -1 for t in tensors.values()}
    for name, dtype in fields.items():
        if tensors[name].dtype != dtype or (ndim is not None and tensors[name].ndim != ndim):
            raise MalformedBlob(f"dataset field {name!r} has dtype {tensors[name].dtype} and {tensors[name].ndim} dims")
    if len(lengths) != 1 or -1 in lengths:
        raise MalformedBlob("dataset fields have different lengths")
