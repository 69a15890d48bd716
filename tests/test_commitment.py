"""The one output commitment: re-execution reproduces it, tampering with model, inputs or outputs breaks it."""

from __future__ import annotations

import pytest

from agents.capabilities.inference import run_call
from marketplace.ml import InferenceRunner, build_model
from protocols.commitment import CommitmentError, output_commitment, quantize_outputs, verify_output_commitment

PAIRS = [[0.0, 3.0], [5.0, 1023.0], [17.0, 17.0], [255.0, 0.0]]
ROWS = [[0.5] * 16, [-1.25, 2.0, *([0.0] * 14)]]


@pytest.mark.parametrize(("kind", "rows"), [("recommender", PAIRS), ("classifier", ROWS)])
def test_runCall_reExecutionReproducesCommitment(kind: str, rows: list[list[float]]) -> None:
    outputs, commitment = run_call(InferenceRunner(build_model(kind, seed=9)), "m", rows)  # type: ignore[arg-type]
    again = run_call(InferenceRunner(build_model(kind, seed=9)), "m", rows)  # type: ignore[arg-type]
    assert again == (outputs, commitment)
    assert verify_output_commitment("m", rows, outputs, commitment)


def test_runCall_otherWeightsOtherCommitment() -> None:
    _, honest = run_call(InferenceRunner(build_model("recommender", seed=1)), "m", PAIRS)
    _, other = run_call(InferenceRunner(build_model("recommender", seed=2)), "m", PAIRS)
    assert honest != other


def test_verify_rejectsTamperedOutputsInputsOrModel() -> None:
    outputs, commitment = run_call(InferenceRunner(build_model("classifier", seed=3)), "m", ROWS)
    tampered = [list(row) for row in outputs]
    tampered[1][2] = round(tampered[1][2] + 1e-6, 6)
    assert not verify_output_commitment("m", ROWS, tampered, commitment)
    assert not verify_output_commitment("m", [ROWS[1], ROWS[0]], outputs, commitment)
    assert not verify_output_commitment("other-model", ROWS, outputs, commitment)


def test_verify_rejectsMalformedOutputs() -> None:
    outputs, commitment = run_call(InferenceRunner(build_model("recommender", seed=3)), "m", PAIRS)
    off_grid = [[row[0] + 1e-9] for row in outputs]
    for bad in (outputs[:-1], [[*row, 0.0] for row in outputs], off_grid, [[float("nan")] for _ in outputs]):
        assert not verify_output_commitment("m", PAIRS, bad, commitment)


def test_outputCommitment_offGridOutputs_raise() -> None:
    with pytest.raises(CommitmentError, match="grid"):
        output_commitment("m", PAIRS, [[0.1234567]])
    assert output_commitment("m", PAIRS, quantize_outputs([[0.1234567]])).startswith("0x")
