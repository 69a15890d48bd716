"""One user's local training round of federated learning, and the server-side arithmetic around it.

A round works on flat float32 weight vectors (`flatten` / `unflatten`): the server sends the global weights,
each user agent trains on its own shopping history with `LocalTrainer.train` and returns only the update
(new − old), bounded in L2 norm so secure aggregation can quantise it; the server combines updates with
`fedavg` and scores the result with `evaluate`.

With `LocalConfig.dp` set, local training is DP-SGD with Opacus: each step samples records independently
with probability q (Poisson sampling), clips every record's gradient to `max_grad_norm` and adds Gaussian
noise of std `noise_multiplier · max_grad_norm` to their sum. The update reports its step count and q so
the caller can charge the user's privacy budget (`marketplace.ml.federated.privacy`); nothing here
computes ε. With `dp=None` the same loop runs as plain SGD, the baseline FedAvg round of the benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from opacus.grad_sample import GradSampleModuleExpandedWeights
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.nn import functional

from marketplace.ml import training
from marketplace.ml.data import InteractionDataset, validate_dataset
from marketplace.ml.determinism import ensure_deterministic
from marketplace.ml.training import EvaluationMetrics, TrainingError
from marketplace.ml.zoo import RecommenderSpec, TwoTowerRecommender, build_model

WeightVector = npt.NDArray[np.float32]

# Bounds on what a round's coordinator may ask of a user's device.
MAX_LOCAL_STEPS = 10_000
MAX_LOCAL_BATCH = 4096

# The update is scaled to one part in a million under its bound, so float32 rounding of the scaled vector
# cannot push its norm back above `update_clip`.
_CLIP_MARGIN = 1.0 - 1e-6


class WeightVectorError(ValueError):
    """A weight vector or update has the wrong length or dtype, or holds NaN or infinity."""


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD parameters: noise multiplier σ and the per-record gradient clip C (noise std is σ·C)."""

    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class LocalConfig:
    """How a user trains locally in one round.

    `local_steps` SGD steps at learning rate `lr`, each on a Poisson sample of the history with expected size
    `batch_size` (sample rate q = batch_size / history length, at most 1); the update is then scaled down to
    L2 norm `update_clip` if it is longer. `dp` makes the steps DP-SGD; None trains without privacy.
    """

    lr: float = 0.5
    batch_size: int = 16
    local_steps: int = 4
    update_clip: float = 1.0
    dp: DPConfig | None = field(default_factory=DPConfig)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and 0.0 < self.lr <= 10.0):
            raise TrainingError(f"learning rate must be in (0, 10], got {self.lr}")
        if not 1 <= self.batch_size <= MAX_LOCAL_BATCH:
            raise TrainingError(f"batch size must be in [1, {MAX_LOCAL_BATCH}], got {self.batch_size}")
        if not 1 <= self.local_steps <= MAX_LOCAL_STEPS:
            raise TrainingError(f"local steps must be in [1, {MAX_LOCAL_STEPS}], got {self.local_steps}")
        if not (math.isfinite(self.update_clip) and self.update_clip > 0.0):
            raise TrainingError(f"update clip must be positive and finite, got {self.update_clip}")
        if self.dp is not None:
            if not (math.isfinite(self.dp.noise_multiplier) and self.dp.noise_multiplier >= 0.0):
                raise TrainingError(f"noise multiplier must be >= 0 and finite, got {self.dp.noise_multiplier}")
            if not (math.isfinite(self.dp.max_grad_norm) and self.dp.max_grad_norm > 0.0):
                raise TrainingError(f"max grad norm must be positive and finite, got {self.dp.max_grad_norm}")


@dataclass(frozen=True, eq=False)
class LocalUpdate:
    """A user's round result: `delta` = new − old weights (norm ≤ update_clip), and what privacy accounting needs.

    `steps` and `sample_rate` are the steps taken and their Poisson sample rate q; under DP, together with the
    config's noise multiplier, they are what the user's ε ledger is charged for.
    """

    delta: WeightVector
    steps: int
    sample_rate: float


def flatten(model: nn.Module) -> WeightVector:
    """Return the model's parameters concatenated in `model.parameters()` order as one float32 vector."""
    with torch.no_grad():
        vector = torch.cat([parameter.reshape(-1) for parameter in model.parameters()])
    return vector.numpy().astype(np.float32)


def unflatten(model: nn.Module, weights: WeightVector) -> None:
    """Overwrite the model's parameters in place with a vector made by `flatten` of the same architecture."""
    expected = sum(p.numel() for p in model.parameters())
    _check_vector(weights, expected, "weight vector")
    # Copied into the existing parameters, never aliased: training must not write into the caller's vector.
    offset = 0
    with torch.no_grad():
        for parameter in model.parameters():
            size = parameter.numel()
            parameter.copy_(torch.from_numpy(weights[offset : offset + size]).view_as(parameter))
            offset += size


def initial_weights(spec: RecommenderSpec, seed: int) -> WeightVector:
    """Return the weights of a freshly built recommender (`build_model(spec, seed)`): round 0's global model."""
    return flatten(build_model(spec, seed))


def fedavg(base: WeightVector, updates: Sequence[WeightVector], weights: Sequence[float]) -> WeightVector:
    """Return `base` plus the weighted mean of `updates` (FedAvg); `weights` are their shares, e.g. record counts.

    Sums run in float64, so their rounding stays far below float32 precision.
    """
    if not updates or len(updates) != len(weights):
        raise WeightVectorError(f"need one weight per update, got {len(updates)} updates and {len(weights)} weights")
    factors = np.asarray(weights, dtype=np.float64)
    total_weight = float(factors.sum())
    if not (np.isfinite(factors).all() and (factors >= 0).all() and total_weight > 0):
        raise WeightVectorError("FedAvg weights must be finite, non-negative and not all zero")
    _check_vector(base, len(base), "base vector")
    total = np.zeros(base.shape[0], dtype=np.float64)
    for update, factor in zip(updates, factors, strict=True):
        _check_vector(update, base.shape[0], "update")
        total += factor * update
    return (base + total / total_weight).astype(np.float32)


def evaluate(spec: RecommenderSpec, weights: WeightVector, heldout: InteractionDataset) -> EvaluationMetrics:
    """Score the global weights on held-out events: ROC AUC (`score`) and mean binary cross-entropy (`loss`)."""
    model = build_model(spec, seed=0)  # every parameter is overwritten next
    unflatten(model, weights)
    return training.evaluate(model, heldout)


class _ExpandedWeightsTwoTower(TwoTowerRecommender):
    """The zoo's two-tower recommender, feeding ids to its embeddings as [B, 1] columns.

    Opacus' expanded-weights mode (the fastest per-record gradients for this model) needs every layer input
    to carry a batch dimension, which a 1-d id vector does not. Parameters and logits equal the zoo model's.
    """

    def forward(self, user_ids: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Return one logit per (user_ids[i], item_ids[i]) pair, shape [batch]."""
        users: torch.Tensor = self.user_tower(self.user_embedding(user_ids.unsqueeze(1)).squeeze(1))
        items: torch.Tensor = self.item_tower(self.item_embedding(item_ids.unsqueeze(1)).squeeze(1))
        return (users * items).sum(dim=-1)


class LocalTrainer:
    """Runs users' local training one after another in one process, reusing one model and one Opacus setup.

    Building the Opacus per-record-gradient module and DP optimizer costs more than a user's whole round, so
    they are made once here; each `train` call loads the global weights and sets that user's sampling,
    clipping and noise parameters. Training pins torch to one thread (`ensure_deterministic`): for a model
    this small more threads are slower, and a fixed count keeps updates reproducible for a seed.
    """

    def __init__(self, spec: RecommenderSpec) -> None:
        ensure_deterministic()
        self.spec = spec
        with torch.random.fork_rng(devices=[]):  # initial values are irrelevant; keep the caller's RNG as it was
            self._model = _ExpandedWeightsTwoTower(spec)
        self._sgd = torch.optim.SGD(self._model.parameters(), lr=0.0)  # each call sets its own rate
        # Plain training calls `_model` directly; only calls through `_per_record` compute per-record gradients.
        # Weights are always read and written through `_model`, so the wrapper's `_module.` prefix never shows.
        self._per_record = GradSampleModuleExpandedWeights(self._model, loss_reduction="sum")
        self._dp_sgd = DPOptimizer(
            self._sgd, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=1, loss_reduction="mean"
        )

    def train(self, weights: WeightVector, history: InteractionDataset, config: LocalConfig, seed: int) -> LocalUpdate:
        """Train from the global `weights` on one user's `history`; the same inputs and seed give the same update.

        `seed` (>= 0) fixes which records each step samples and, under DP, the noise; give every user and
        round its own seed. The trainer keeps no state between calls.
        """
        validate_dataset(history, self.spec)
        unflatten(self._model, weights)
        records = len(history)
        sample_rate = min(1.0, config.batch_size / records)
        expected_batch = min(config.batch_size, records)
        sampling_seed, noise_seed = np.random.SeedSequence(seed).generate_state(2)
        sampling = torch.Generator().manual_seed(int(sampling_seed))
        for group in self._sgd.param_groups:
            group["lr"] = config.lr
        if config.dp is not None:
            self._dp_sgd.noise_multiplier = config.dp.noise_multiplier
            self._dp_sgd.max_grad_norm = config.dp.max_grad_norm
            self._dp_sgd.expected_batch_size = expected_batch
            self._dp_sgd.generator = torch.Generator().manual_seed(int(noise_seed))
        for _ in range(config.local_steps):
            batch = (torch.rand(records, generator=sampling) < sample_rate).nonzero().squeeze(1)
            if config.dp is None:
                self._plain_step(history, batch, expected_batch)
            else:
                self._dp_step(history, batch)
        trained = flatten(self._model)
        if not np.isfinite(trained).all():
            raise TrainingError(f"local training diverged to non-finite weights at learning rate {config.lr}")
        delta = trained - weights
        return LocalUpdate(delta=_clip(delta, config.update_clip), steps=config.local_steps, sample_rate=sample_rate)

    def _plain_step(self, history: InteractionDataset, batch: torch.Tensor, expected_batch: int) -> None:
        if batch.numel() == 0:
            return  # no records, no gradient: without noise an empty step changes nothing
        self._sgd.zero_grad(set_to_none=True)
        logits = self._model(history.user_ids[batch], history.item_ids[batch])
        # Divided by the expected rather than the actual batch size, as DP-SGD does, so the two modes differ
        # only by clipping and noise.
        loss = functional.binary_cross_entropy_with_logits(logits, history.labels[batch], reduction="sum")
        (loss / expected_batch).backward()  # type: ignore[no-untyped-call]
        self._sgd.step()

    def _dp_step(self, history: InteractionDataset, batch: torch.Tensor) -> None:
        self._dp_sgd.zero_grad(set_to_none=True)
        if batch.numel() == 0:
            # An empty Poisson sample still takes a noisy step (the accounting assumes every step releases
            # noise); Opacus handles zero-length per-record gradients but cannot run a forward pass on none.
            for parameter in self._model.parameters():
                parameter.grad_sample = torch.zeros((0, *parameter.shape))  # type: ignore[attr-defined]
        else:
            logits = self._per_record(history.user_ids[batch], history.item_ids[batch])
            loss = functional.binary_cross_entropy_with_logits(logits, history.labels[batch], reduction="sum")
            loss.backward()  # type: ignore[no-untyped-call]
        self._dp_sgd.step()


# One trainer per model spec and process: see `train_many`.
_trainers: dict[RecommenderSpec, LocalTrainer] = {}


def train_many(
    spec: RecommenderSpec,
    weights: WeightVector,
    histories: Sequence[InteractionDataset],
    config: LocalConfig,
    seeds: Sequence[int],
) -> list[LocalUpdate]:
    """Train several users' rounds from the same global `weights`, one after another; update i uses `seeds[i]`.

    A module-level function of plain arguments, so a batch of simulated users can run in an offload worker.
    Each process builds its `LocalTrainer` for a spec once and reuses it (building the Opacus setup costs more
    than a user's round); the updates equal those of `LocalTrainer.train` with the same inputs and seeds.
    """
    if len(histories) != len(seeds):
        raise TrainingError(f"need one seed per history, got {len(histories)} histories and {len(seeds)} seeds")
    trainer = _trainers.get(spec)
    if trainer is None:
        trainer = _trainers[spec] = LocalTrainer(spec)
    return [trainer.train(weights, history, config, seed) for history, seed in zip(histories, seeds, strict=True)]


def _clip(delta: WeightVector, bound: float) -> WeightVector:
    wide = delta.astype(np.float64)
    # Summed by numpy itself: np.linalg.norm goes through BLAS, whose threads stall ~3 ms waking up between steps.
    norm = math.sqrt(float(np.sum(wide * wide)))
    if norm <= bound:
        return delta
    return (wide * (bound / norm * _CLIP_MARGIN)).astype(np.float32)


def _check_vector(vector: WeightVector, size: int, what: str) -> None:
    if not isinstance(vector, np.ndarray) or vector.dtype != np.float32 or vector.shape != (size,):
        shape = getattr(vector, "shape", None)
        dtype = getattr(vector, "dtype", type(vector).__name__)
        raise WeightVectorError(f"{what} must be float32 of shape ({size},), got {dtype} of shape {shape}")
    if not np.isfinite(vector).all():
        raise WeightVectorError(f"{what} holds NaN or infinity")
