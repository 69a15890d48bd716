"""The attack suite runs on the contracts suite's fixtures: funded actors on the shared anvil, rolled back per test."""

from __future__ import annotations

# Re-exported so pytest registers them for this package too (each package funds its own actors).
from tests.contracts.conftest import actors, chain

__all__ = ["actors", "chain"]
