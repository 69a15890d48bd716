"""Training market workloads: deterministic fine-tuning and held-out evaluation a validator can re-check."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

from marketplace.ml.data import (
    ClassificationDataset,
    Dataset,
    DatasetError,
    InteractionDataset,
    make_classification,
    make_interactions,
    split,
    validate_dataset,
)
from marketplace.ml.determinism import ensure_deterministic
from marketplace.ml.zoo import (
    AgoraModel,
    ModelKind,
    ModelSpec,
    RecommenderSpec,
    TwoTowerRecommender,
    build_model,
    default_spec,
)

# Job parameters arrive from buyers over the wire; these bounds keep one job from monopolising a seller.
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 4096
_EVAL_CHUNK = 4096
_REPORT_DECIMALS = 6


class TrainingError(ValueError):
    """Training parameters are out of range (epochs, learning rate, batch size)."""


@dataclass(frozen=True)
class TrainingMetrics:
    """What a fine-tune did: epochs, optimizer steps, examples seen per epoch, mean training loss per epoch."""

    epochs: int
    steps: int
    examples: int
    epoch_losses: tuple[float, ...]

    @property
    def final_loss(self) -> float:
        """Mean training loss of the last epoch."""
        return self.epoch_losses[-1]


@dataclass(frozen=True)
class EvaluationMetrics:
    """Held-out quality: `score` is ROC AUC for a recommender, accuracy for a classifier; `loss` is mean CE/BCE."""

    metric: Literal["auc", "accuracy"]
    score: float
    loss: float
    examples: int

    def to_dict(self) -> dict[str, float | int | str]:
        """Return the metrics as a plain dict (wire form)."""
        return {"metric": self.metric, "score": self.score, "loss": self.loss, "examples": self.examples}


def fine_tune(
    model: AgoraModel, dataset: Dataset, epochs: int, lr: float, seed: int, batch_size: int = 128
) -> tuple[AgoraModel, TrainingMetrics]:
    """Fine-tune a copy of `model` with Adam on `dataset`; the same inputs and seed give bit-identical weights.

    The input model is not modified (a seller keeps serving its base model while a fine-tune runs).
    The returned model is in eval mode.
    """
    if not 1 <= epochs <= MAX_EPOCHS:
        raise TrainingError(f"epochs must be in [1, {MAX_EPOCHS}], got {epochs}")
    if not (math.isfinite(lr) and 0.0 < lr <= 1.0):
        raise TrainingError(f"learning rate must be in (0, 1], got {lr}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise TrainingError(f"batch size must be in [1, {MAX_BATCH_SIZE}], got {batch_size}")
    validate_dataset(dataset, model.spec)
    ensure_deterministic()
    tuned = copy.deepcopy(model)
    tuned.train()
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = len(dataset)
    losses: list[float] = []
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = _batch_loss(tuned, dataset, index)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += float(loss.detach()) * int(index.shape[0])
            steps += 1
        losses.append(round(total / n, _REPORT_DECIMALS))
    tuned.eval()
    return tuned, TrainingMetrics(epochs=epochs, steps=steps, examples=n, epoch_losses=tuple(losses))


def _batch_loss(model: AgoraModel, dataset: Dataset, index: torch.Tensor) -> torch.Tensor:
    if isinstance(model, TwoTowerRecommender):
        assert isinstance(dataset, InteractionDataset)  # validate_dataset checked the pairing
        logits = model(dataset.user_ids[index], dataset.item_ids[index])
        return functional.binary_cross_entropy_with_logits(logits, dataset.labels[index])
    assert isinstance(dataset, ClassificationDataset)
    return functional.cross_entropy(model(dataset.features[index]), dataset.labels[index])


def evaluate(model: AgoraModel, heldout: Dataset) -> EvaluationMetrics:
    """Score `model` on held-out data: AUC + BCE for a recommender, accuracy + cross-entropy for a classifier.

    Deterministic on one build; values are rounded to 1e-6. Across builds, compare with `metrics_agree`.
    """
    validate_dataset(heldout, model.spec)
    ensure_deterministic()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = torch.cat([_logits(model, heldout, s) for s in range(0, len(heldout), _EVAL_CHUNK)])
    finally:
        model.train(was_training)
    # Losses are reduced in float64 so the reported mean does not depend on float32 accumulation order.
    wide = logits.to(torch.float64)
    if isinstance(heldout, InteractionDataset):
        labels = heldout.labels.to(torch.float64)
        loss = float(functional.binary_cross_entropy_with_logits(wide, labels))
        score = roc_auc(logits.numpy(), heldout.labels.numpy())
        metric: Literal["auc", "accuracy"] = "auc"
    else:
        loss = float(functional.cross_entropy(wide, heldout.labels))
        score = float((logits.argmax(dim=1) == heldout.labels).to(torch.float64).mean())
        metric = "accuracy"
    return EvaluationMetrics(
        metric=metric,
        score=round(score, _REPORT_DECIMALS),
        loss=round(loss, _REPORT_DECIMALS),
        examples=len(heldout),
    )


def _logits(model: AgoraModel, dataset: Dataset, start: int) -> torch.Tensor:
    window = slice(start, start + _EVAL_CHUNK)
    if isinstance(model, TwoTowerRecommender):
        assert isinstance(dataset, InteractionDataset)
        out: torch.Tensor = model(dataset.user_ids[window], dataset.item_ids[window])
        return out
    assert isinstance(dataset, ClassificationDataset)
    out = model(dataset.features[window])
    return out


def roc_auc(scores: npt.NDArray[np.float32], labels: npt.NDArray[np.float32]) -> float:
    """Return the exact ROC AUC of `scores` for 0/1 `labels` (Mann–Whitney U, tied scores count one half)."""
    positives = int(labels.sum())
    negatives = int(labels.shape[0]) - positives
    if positives == 0 or negatives == 0:
        raise DatasetError("AUC needs both positive and negative examples in the held-out set")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # 1-based average rank of each distinct score: ranks before the group, plus the mean position within it.
    group_rank = np.cumsum(counts) - counts + (counts + 1) / 2.0
    rank_sum = float(group_rank[inverse][labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def metrics_agree(claimed: EvaluationMetrics, measured: EvaluationMetrics, tolerance: float = 1e-4) -> bool:
    """Return whether a seller's claimed metrics match a validator's re-measurement within `tolerance`."""
    return (
        claimed.metric == measured.metric
        and claimed.examples == measured.examples
        and abs(claimed.score - measured.score) <= tolerance
        and abs(claimed.loss - measured.loss) <= tolerance
    )


def train_base_model(
    spec: ModelSpec | ModelKind, seed: int, world_seed: int = 0
) -> tuple[AgoraModel, EvaluationMetrics]:
    """Build and pre-train a seller's base model on general synthetic data; return it with held-out metrics.

    A recommender trains on 16,000 interactions over the base items (never the advertiser catalogues), so
    a later fine-tune on a catalogue has something to add; 1-2 s single-threaded. Same arguments, same weights.
    """
    resolved = default_spec(spec) if isinstance(spec, str) else spec
    train: Dataset
    heldout: Dataset
    if isinstance(resolved, RecommenderSpec):
        train, heldout = split(make_interactions(resolved, 20_000, seed=seed, world_seed=world_seed), 0.2, seed)
    else:
        train, heldout = split(make_classification(resolved, 2_500, seed=seed, world_seed=world_seed), 0.2, seed)
    model, _ = fine_tune(build_model(resolved, seed), train, epochs=5, lr=0.01, seed=seed, batch_size=256)
    return model, evaluate(model, heldout)
