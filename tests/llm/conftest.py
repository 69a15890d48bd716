"""LLM-agent fixtures: the role tests' economy (shared anvil, registry, operator) and its dispatcher check."""

from __future__ import annotations

from tests.roles.conftest import _dispatcher_clean, economy

__all__ = ["_dispatcher_clean", "economy"]
