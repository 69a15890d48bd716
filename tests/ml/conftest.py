"""Shared ML fixtures: a base recommender pre-trained once per session and the datasets around it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from marketplace.ml import (
    InteractionDataset,
    RecommenderSpec,
    TwoTowerRecommender,
    catalogue_items,
    make_interactions,
    split,
    train_base_model,
)


@dataclass(frozen=True)
class RecommenderWorld:
    """A seller's pre-trained base model and an advertiser's catalogue data, split for training and checking."""

    spec: RecommenderSpec
    base_model: TwoTowerRecommender
    base_heldout: InteractionDataset
    catalogue_train: InteractionDataset
    catalogue_heldout: InteractionDataset


@pytest.fixture(scope="session")
def world() -> RecommenderWorld:
    """Pre-train the base recommender on general items (as seller A would) and sample catalogue 0's data."""
    spec = RecommenderSpec()
    base_model, _ = train_base_model(spec, seed=1)
    assert isinstance(base_model, TwoTowerRecommender)
    # The same data and split train_base_model used internally: its held-out part was never trained on.
    _, base_heldout = split(make_interactions(spec, 20_000, seed=1), 0.2, seed=1)
    catalogue = make_interactions(spec, 3_000, seed=2, items=catalogue_items(spec, 0))
    catalogue_train, catalogue_heldout = split(catalogue, 0.25, seed=0)
    return RecommenderWorld(spec, base_model, base_heldout, catalogue_train, catalogue_heldout)
