"""The one output-commitment scheme of agora: what `InferenceResult.output_commitment` commits to.

commitment = 0x sha256(tag ‖ model id ‖ input rows as float64 ‖ output rows on a 10⁻⁶ grid as int64),
each row prefixed by its length. It binds the model, the exact wire inputs and the outputs, so a
validator that re-executes the same call gets the same commitment, and revealed outputs can be checked
by anyone without the model. Outputs must lie on the 10⁻⁶ grid (`quantize_outputs` puts them there).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence

OUTPUT_SCALE = 1_000_000
"""Outputs are committed as integers in millionths."""

_TAG = b"agora.output-commitment.v2"
_LIMIT = 1e12


class CommitmentError(ValueError):
    """Rows that cannot be committed: non-finite or huge values, or outputs off the 10⁻⁶ grid."""


def quantize_outputs(outputs: Sequence[Sequence[float]]) -> list[list[float]]:
    """Round every output to the 10⁻⁶ grid (what a seller returns and commits to)."""
    return [[round(float(x) * OUTPUT_SCALE) / OUTPUT_SCALE for x in row] for row in outputs]


def _float_rows(rows: Sequence[Sequence[float]], what: str) -> bytes:
    out = [struct.pack(">I", len(rows))]
    for row in rows:
        values = [float(x) for x in row]
        if not all(math.isfinite(x) and abs(x) <= _LIMIT for x in values):
            raise CommitmentError(f"{what}: values must be finite and at most 1e12 in size")
        out.append(struct.pack(f">I{len(values)}d", len(values), *values))
    return b"".join(out)


def _grid_rows(rows: Sequence[Sequence[float]]) -> bytes:
    out = [struct.pack(">I", len(rows))]
    for row in rows:
        scaled = []
        for x in row:
            value = float(x)
            if not math.isfinite(value) or abs(value) > _LIMIT:
                raise CommitmentError("outputs: values must be finite and at most 1e12 in size")
            units = round(value * OUTPUT_SCALE)
            if units / OUTPUT_SCALE != value:
                raise CommitmentError("outputs: values must lie on the 1e-6 grid (quantize them first)")
            scaled.append(units)
        out.append(struct.pack(f">I{len(scaled)}q", len(scaled), *scaled))
    return b"".join(out)


def output_commitment(model_id: str, inputs: Sequence[Sequence[float]], outputs: Sequence[Sequence[float]]) -> str:
    """The 0x commitment to `outputs` of `model_id` on `inputs` (raises CommitmentError on rows it cannot commit)."""
    name = model_id.encode()
    body = _TAG + struct.pack(">I", len(name)) + name + _float_rows(inputs, "inputs") + _grid_rows(outputs)
    return "0x" + hashlib.sha256(body).hexdigest()


def verify_output_commitment(
    model_id: str, inputs: Sequence[Sequence[float]], outputs: Sequence[Sequence[float]], commitment: str
) -> bool:
    """Whether revealed outputs match a commitment (False for rows that cannot be committed at all)."""
    try:
        return output_commitment(model_id, inputs, outputs) == commitment.lower()
    except (CommitmentError, TypeError, ValueError):
        return False
