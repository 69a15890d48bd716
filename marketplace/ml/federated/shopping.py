"""Synthetic shopping histories of the user agents that train a recommender together by federated learning.

Each user agent holds the events of one user id: items it was shown and whether it bought them. Events come
from the latent world of `marketplace.ml.data` (users in taste segments, items in genres, a popularity bias
per item), so federated models, a centrally trained baseline and the markets' base models all learn the same
structure. Popular items are also shown more often, as a shop's front page would. Histories and the held-out
evaluation set are fixed by their seeds; the world by `world_seed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# One world for the whole package: the federated histories reuse data.py's latent factors and purchase model
# rather than a copy of them, so a change to the world changes both in step.
from marketplace.ml.data import (
    _LATENT_DIM,
    _SHARPNESS,
    DatasetError,
    InteractionDataset,
    _world,
    base_items,
)
from marketplace.ml.training import EvaluationMetrics, evaluate, fine_tune
from marketplace.ml.zoo import RecommenderSpec, build_model

# Domain-separation tags for the sampling streams: a history and the held-out set never share random draws.
_HISTORY_STREAM = 0x68_6973
_HELDOUT_STREAM = 0x68_6C64


def user_history(
    spec: RecommenderSpec, user_id: int, n_events: int, seed: int, world_seed: int = 0
) -> InteractionDataset:
    """Return `n_events` shopping events of one user: the base items it was shown and whether it bought each."""
    _check_users(spec, [user_id])
    if n_events < 1:
        raise DatasetError(f"a history needs at least one event, got {n_events}")
    rng = np.random.default_rng([seed, world_seed, user_id, _HISTORY_STREAM])
    return _sample_events(spec, np.full(n_events, user_id), rng, world_seed)


def heldout_events(
    spec: RecommenderSpec, users: Sequence[int], n: int, seed: int, world_seed: int = 0
) -> InteractionDataset:
    """Return `n` fresh events of users drawn uniformly from `users`: the global evaluation set.

    The events are new draws from the same world, never copies of any `user_history`, so they are held out
    from every user's training data whatever seeds the histories used.
    """
    _check_users(spec, users)
    if n < 1:
        raise DatasetError(f"a held-out set needs at least one event, got {n}")
    rng = np.random.default_rng([seed, world_seed, _HELDOUT_STREAM])
    who = np.asarray(users, dtype=np.int64)[rng.integers(0, len(users), n)]
    return _sample_events(spec, who, rng, world_seed)


def pool_histories(histories: Sequence[InteractionDataset]) -> InteractionDataset:
    """Concatenate users' histories into one dataset (what a central server would hold without federation)."""
    if not histories:
        raise DatasetError("no histories to pool")
    return InteractionDataset(
        user_ids=torch.cat([history.user_ids for history in histories]),
        item_ids=torch.cat([history.item_ids for history in histories]),
        labels=torch.cat([history.labels for history in histories]),
    )


def central_baseline(
    spec: RecommenderSpec,
    histories: Sequence[InteractionDataset],
    heldout: InteractionDataset,
    seed: int,
    epochs: int = 5,
) -> EvaluationMetrics:
    """Train one model centrally on the pooled histories and return its held-out ROC AUC (chance is 0.5).

    This is the no-privacy upper reference a federated run is compared with: same data, same architecture,
    Adam at lr 0.01 in batches of 64 from `build_model(spec, seed)`. The returned `score` is the AUC of
    `marketplace.ml.training.evaluate`, `loss` the mean binary cross-entropy.
    """
    model, _ = fine_tune(
        build_model(spec, seed), pool_histories(histories), epochs=epochs, lr=0.01, seed=seed, batch_size=64
    )
    return evaluate(model, heldout)


def _check_users(spec: RecommenderSpec, users: Sequence[int]) -> None:
    if len(users) == 0:
        raise DatasetError("no users given")
    low, high = min(users), max(users)
    if low < 0 or high >= spec.num_users:
        raise DatasetError(f"user ids must lie in [0, {spec.num_users - 1}], found values in [{low}, {high}]")


def _sample_events(
    spec: RecommenderSpec, users: np.ndarray[Any, Any], rng: np.random.Generator, world_seed: int
) -> InteractionDataset:
    user_factors, item_factors, bias = _world(spec, world_seed)
    pool = base_items(spec)
    exposure = np.exp(bias[pool.start : pool.stop])
    shown = pool.start + rng.choice(len(pool), size=len(users), p=exposure / exposure.sum())
    # The purchase model of data.make_interactions: taste match sharpened, plus the item's popularity.
    affinity = (user_factors[users] * item_factors[shown]).sum(axis=1) / math.sqrt(_LATENT_DIM)
    bought = rng.random(len(users)) < 1.0 / (1.0 + np.exp(-(_SHARPNESS * affinity + bias[shown])))
    return InteractionDataset(
        user_ids=torch.from_numpy(users.astype(np.int64)),
        item_ids=torch.from_numpy(shown.astype(np.int64)),
        labels=torch.from_numpy(bought.astype(np.float32)),
    )
