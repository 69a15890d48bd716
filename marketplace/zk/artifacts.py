"""Where one cached build of the conversion circuit keeps its files (made by marketplace.zk.build)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CircuitArtifacts:
    """Paths of one cached build of the conversion circuit."""

    directory: Path
    wasm: Path
    zkey: Path
    vkey: Path
    verifier: Path
    r1cs: Path
    key: str
    production: bool
