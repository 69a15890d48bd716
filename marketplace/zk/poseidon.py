"""Poseidon over the BN254 scalar field, bit-for-bit the hash of circomlib's circuits and circomlibjs.

Pure Python with circomlibjs's round constants and MDS matrices, read from node_modules (no network) the
first time a width is used. Inputs are field elements (ints in [0, FIELD)).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from marketplace.paths import MissingToolError, project_root

FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""The BN254 (alt_bn128) scalar field modulus: every circuit signal lives in [0, FIELD)."""
FULL_ROUNDS = 8
PARTIAL_ROUNDS = (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68)
"""Partial rounds per width t = 2..17, as circomlibjs uses them."""
MAX_INPUTS = len(PARTIAL_ROUNDS)


def constants_path() -> Path:
    """circomlibjs's Poseidon constants (round constants C and MDS matrices M per width)."""
    return project_root() / "node_modules" / "circomlibjs" / "src" / "poseidon_constants.json"


@cache
def _all_constants() -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[tuple[int, ...], ...], ...]]:
    path = constants_path()
    if not path.exists():
        raise MissingToolError(f"circomlibjs not found at {path}: run `make bootstrap` (or `npm ci`)")
    raw = json.loads(path.read_text())
    c = tuple(tuple(int(x, 16) for x in row) for row in raw["C"])
    m = tuple(tuple(tuple(int(x, 16) for x in line) for line in matrix) for matrix in raw["M"])
    return c, m


def poseidon(inputs: Sequence[int]) -> int:
    """Poseidon hash of 1..16 field elements (circomlib's `Poseidon(n)` / circomlibjs `poseidon`)."""
    n = len(inputs)
    if not 1 <= n <= MAX_INPUTS:
        raise ValueError(f"poseidon takes 1..{MAX_INPUTS} inputs, got {n}")
    for x in inputs:
        if not 0 <= x < FIELD:
            raise ValueError(f"input {x} is not a field element")
    all_c, all_m = _all_constants()
    t = n + 1
    c, m = all_c[t - 2], all_m[t - 2]
    partial = PARTIAL_ROUNDS[t - 2]
    state = [0, *inputs]
    half = FULL_ROUNDS // 2
    for r in range(FULL_ROUNDS + partial):
        state = [(a + c[r * t + i]) % FIELD for i, a in enumerate(state)]
        if r < half or r >= half + partial:
            state = [pow(a, 5, FIELD) for a in state]
        else:
            state[0] = pow(state[0], 5, FIELD)
        state = [sum(m[i][j] * a for j, a in enumerate(state)) % FIELD for i in range(t)]
    return state[0]


def poseidon2(left: int, right: int) -> int:
    """Poseidon of two field elements: one Merkle node."""
    return poseidon((left, right))
