"""On-device ad ranking: a user scores creatives with its own recommender, fine-tuned on its own shopping history.

Everything here runs inside the user's agent (through `offload`): the history, the fine-tuned weights and the
scores never leave it. The recommender starts from public weights every agent can rebuild (`PUBLIC_MODEL_SEED`),
so an advertiser can express its audience as a targeting embedding in the same item-embedding space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from marketplace.ml import RecommenderSpec, build_model
from marketplace.ml.federated.shopping import user_history
from marketplace.ml.training import fine_tune
from marketplace.ml.zoo import TwoTowerRecommender
from protocols.ads import TARGETING_DIM

PUBLIC_MODEL_SEED = 0xAD5
"""Seed of the public starting weights (the same recommender for every agent)."""
MILLIONTHS = 1_000_000
LOCAL_EPOCHS = 3
LOCAL_LR = 0.02


@dataclass(frozen=True)
class Candidate:
    """A creative as the ranker sees it: its campaign, its featured items and its targeting embedding."""

    campaign_id: int
    items: tuple[int, ...]
    targeting: tuple[int, ...]


def public_model() -> TwoTowerRecommender:
    """The public starting recommender."""
    model = build_model(RecommenderSpec(), seed=PUBLIC_MODEL_SEED)
    assert isinstance(model, TwoTowerRecommender)
    return model


def targeting_for(items: Sequence[int]) -> list[int]:
    """An advertiser's targeting embedding for its featured items: their mean public item embedding (millionths)."""
    model = public_model()
    with torch.no_grad():
        mean = model.item_embedding(torch.tensor(list(items), dtype=torch.int64)).mean(dim=0)
    if mean.shape[0] != TARGETING_DIM:
        raise ValueError(f"the recommender's embeddings have {mean.shape[0]} dimensions, not {TARGETING_DIM}")
    return [round(float(x) * MILLIONTHS) for x in mean]


def rank_locally(
    shopper_id: int, events: int, seed: int, world_seed: int, candidates: Sequence[Candidate]
) -> list[tuple[int, float]]:
    """(campaign, score) best first: the user's fine-tuned recommender scores each creative's targeting embedding
    (through its item tower) and featured items against the user; the mean purchase probability is the score."""
    spec = RecommenderSpec()
    history = user_history(spec, shopper_id, events, seed=seed, world_seed=world_seed)
    tuned, _ = fine_tune(public_model(), history, epochs=LOCAL_EPOCHS, lr=LOCAL_LR, seed=seed)
    assert isinstance(tuned, TwoTowerRecommender)
    scored = []
    with torch.no_grad():
        user = tuned.user_tower(tuned.user_embedding(torch.tensor([shopper_id])))[0]
        for c in candidates:
            target = tuned.item_tower(torch.tensor(c.targeting, dtype=torch.float32) / MILLIONTHS)
            items = torch.tensor(c.items, dtype=torch.int64)
            item_scores = tuned(torch.full_like(items, shopper_id), items).sigmoid()
            score = (torch.sigmoid(user @ target) + item_scores.mean()) / 2
            scored.append((c.campaign_id, float(score)))
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))
