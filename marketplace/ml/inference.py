"""Deterministic inference a validator can re-execute to the last bit, with outputs on a fixed grid.

Wire inputs (plain JSON-able structures, validated and size-limited here):
- recommender: ``{"user_ids": [int, ...], "item_ids": [int, ...]}`` — pairs to score, equal lengths;
- classifier: ``{"features": [[float, ...], ...]}`` — one row of `num_features` numbers per example.

Outputs are rows of probabilities: ``[[p]]`` per pair for a recommender (sigmoid of the logit), one row of
class probabilities (softmax) per example for a classifier.

Quantization. Outputs are computed in float32, then put on the grid 1e-6 (``q = rint(float64(y) · 1e6)``,
as int64) and the reported outputs are exactly ``q / 1e6``, which is what agora's one output commitment
(protocols/commitment.py) commits to. ``inputs_hash`` is sha256("agora.inference.inputs.v1" ‖ kind ‖
spec_id ‖ u32 batch ‖ canonical inputs), where ids are big-endian int64 and features big-endian float32
(what the model actually sees, so inputs that differ only below float32 precision hash equally).

Reproducibility. On one build (same torch version, same CPU kernels) with one thread and deterministic
algorithms, re-execution gives bit-identical float32 outputs, hence an identical commitment. Across builds
(another torch version, BLAS, or CPU instruction set) float32 results can differ in the last bits; the
1e-6 grid absorbs almost all of that, but a value lying within an ulp of a rounding boundary can still
land on a neighbouring grid point. A validator on a different build should therefore compare revealed
outputs with `outputs_close` before disputing, rather than treat a commitment mismatch alone as proof.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from marketplace.ml.determinism import ensure_deterministic
from marketplace.ml.zoo import AgoraModel, ClassifierSpec, ModelSpec, RecommenderSpec, TwoTowerRecommender, spec_id

MAX_BATCH = 256
"""Largest batch one call may carry (bounds the work a single voucher buys)."""

MAX_ABS_FEATURE = 1e6
"""Largest feature magnitude accepted; larger values are a client bug and overflow risks in float32."""

OUTPUT_SCALE = 1_000_000
"""Outputs are quantized to multiples of 1 / OUTPUT_SCALE before committing."""

IntRows: TypeAlias = npt.NDArray[np.int64]
"""Quantized output rows (int64 multiples of 1 / OUTPUT_SCALE)."""

_INPUTS_TAG = b"agora.inference.inputs.v1"


class InvalidInferenceInput(ValueError):
    """Inference inputs are malformed: wrong keys or types, bad shape, out-of-range id, non-finite value."""


@dataclass(frozen=True)
class InferenceOutput:
    """The result of one call: output rows on the 1e-6 grid and the hash of the canonical inputs."""

    outputs: list[list[float]]
    inputs_hash: str


@dataclass(frozen=True, eq=False)
class ParsedInputs:
    """Validated inputs: the tensors the model consumes and the 0x hash of their canonical encoding."""

    tensors: tuple[torch.Tensor, ...]
    batch: int
    inputs_hash: str


def parse_inputs(spec: ModelSpec, inputs: object, max_batch: int = MAX_BATCH) -> ParsedInputs:
    """Validate wire inputs for `spec` and convert them; raise InvalidInferenceInput saying what is wrong."""
    if not isinstance(inputs, Mapping):
        raise InvalidInferenceInput(f"inputs must be a mapping, got {type(inputs).__name__}")
    if isinstance(spec, RecommenderSpec):
        _expect_keys(inputs, ("item_ids", "user_ids"))
        users = _id_list(inputs["user_ids"], "user_ids", spec.num_users, max_batch)
        items = _id_list(inputs["item_ids"], "item_ids", spec.num_items, max_batch)
        if len(users) != len(items):
            raise InvalidInferenceInput(f"user_ids has {len(users)} entries but item_ids has {len(items)}")
        body = struct.pack(f">{len(users)}q", *users) + struct.pack(f">{len(items)}q", *items)
        tensors: tuple[torch.Tensor, ...] = (
            torch.tensor(users, dtype=torch.int64),
            torch.tensor(items, dtype=torch.int64),
        )
        batch = len(users)
    else:
        _expect_keys(inputs, ("features",))
        features = _feature_rows(inputs["features"], spec, max_batch)
        body = features.astype(">f4").tobytes()
        tensors = (torch.from_numpy(features),)
        batch = features.shape[0]
    digest = hashlib.sha256(
        _INPUTS_TAG + spec.kind.encode() + bytes.fromhex(spec_id(spec)[2:]) + struct.pack(">I", batch) + body
    )
    return ParsedInputs(tensors=tensors, batch=batch, inputs_hash="0x" + digest.hexdigest())


def _expect_keys(inputs: Mapping[object, object], keys: tuple[str, ...]) -> None:
    if set(inputs) != set(keys):
        raise InvalidInferenceInput(f"inputs must have exactly the keys {list(keys)}, got {sorted(map(str, inputs))}")


def _sized_list(value: object, name: str, max_batch: int) -> Sequence[object]:
    if not isinstance(value, (list, tuple)):
        raise InvalidInferenceInput(f"{name} must be a list, got {type(value).__name__}")
    if not 1 <= len(value) <= max_batch:
        raise InvalidInferenceInput(f"{name} must hold between 1 and {max_batch} entries, got {len(value)}")
    return value


def _id_list(value: object, name: str, upper: int, max_batch: int) -> list[int]:
    ids = _sized_list(value, name, max_batch)
    out: list[int] = []
    for position, item in enumerate(ids):
        # bool is an int subclass; True as an id is a client bug, not id 1.
        if not isinstance(item, int) or isinstance(item, bool):
            raise InvalidInferenceInput(f"{name}[{position}] must be an integer, got {type(item).__name__}")
        if not 0 <= item < upper:
            raise InvalidInferenceInput(f"{name}[{position}] = {item} is out of range [0, {upper - 1}]")
        out.append(item)
    return out


def _feature_rows(value: object, spec: ClassifierSpec, max_batch: int) -> npt.NDArray[np.float32]:
    rows = _sized_list(value, "features", max_batch)
    flat: list[float] = []
    for r, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != spec.num_features:
            size = len(row) if isinstance(row, (list, tuple)) else type(row).__name__
            raise InvalidInferenceInput(f"features[{r}] must be a list of {spec.num_features} numbers, got {size}")
        for c, x in enumerate(row):
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                raise InvalidInferenceInput(f"features[{r}][{c}] must be a number, got {type(x).__name__}")
            if not (math.isfinite(x) and abs(x) <= MAX_ABS_FEATURE):
                raise InvalidInferenceInput(f"features[{r}][{c}] = {x} is not finite or exceeds {MAX_ABS_FEATURE:g}")
            flat.append(float(x))
    return np.array(flat, dtype=np.float32).reshape(len(rows), spec.num_features)


def quantize(outputs: torch.Tensor) -> IntRows:
    """Map float32 output rows to int64 multiples of 1 / OUTPUT_SCALE (the committed representation)."""
    quantized: IntRows = np.rint(outputs.detach().numpy().astype(np.float64) * OUTPUT_SCALE).astype(np.int64)
    return quantized


class InferenceRunner:
    """Runs one model deterministically on validated wire inputs and commits to the outputs."""

    def __init__(self, model: AgoraModel, spec: ModelSpec | None = None, max_batch: int = MAX_BATCH) -> None:
        if spec is not None and spec != model.spec:
            raise ValueError(f"spec {spec} does not match the model's spec {model.spec}")
        # Process-wide and one-time (the first call imports much of torch, ~1.7 s): done here, not per call.
        ensure_deterministic()
        self._model = model
        self._max_batch = max_batch
        model.eval()

    @property
    def spec(self) -> ModelSpec:
        """The spec of the model this runner serves."""
        return self._model.spec

    @property
    def model(self) -> AgoraModel:
        """The model this runner serves."""
        return self._model

    def run(self, inputs: object) -> InferenceOutput:
        """Validate `inputs`, run the model, and return quantized outputs with their commitment."""
        parsed = parse_inputs(self._model.spec, inputs, self._max_batch)
        ensure_deterministic()  # ~0.3 µs when already set; guards against other code flipping the settings
        self._model.eval()
        with torch.no_grad():
            probabilities = _probabilities(self._model, parsed)
        quantized = quantize(probabilities)
        return InferenceOutput(
            outputs=(quantized / OUTPUT_SCALE).tolist(),
            inputs_hash=parsed.inputs_hash,
        )


def _probabilities(model: AgoraModel, parsed: ParsedInputs) -> torch.Tensor:
    if isinstance(model, TwoTowerRecommender):
        return torch.sigmoid(model(*parsed.tensors)).unsqueeze(1)
    return torch.softmax(model(*parsed.tensors), dim=1)


def _output_width(spec: ModelSpec) -> int:
    return 1 if isinstance(spec, RecommenderSpec) else spec.num_classes


def outputs_close(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], tolerance: float = 1e-5) -> bool:
    """Return whether two output row lists have equal shape and agree within `tolerance` (cross-build check)."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        return False
    return all(abs(p - q) <= tolerance for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True))


def time_raw_inference(model: AgoraModel, inputs: object, n: int) -> float:
    """Return mean seconds per raw forward pass (no validation, hashing or quantizing) over `n` runs."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    parsed = parse_inputs(model.spec, inputs)
    ensure_deterministic()
    model.eval()
    with torch.no_grad():
        _probabilities(model, parsed)  # warm-up: first call allocates
        start = time.perf_counter()
        for _ in range(n):
            _probabilities(model, parsed)
        return (time.perf_counter() - start) / n
