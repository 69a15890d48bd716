"""Role plug-ins: the simulator finds the economy's roles through the `agora.roles` entry-point group.

Each entry point names a module exposing `ROLE` (the agent class) and the plan/terms types the runner
builds; a package can ship its own role module under the same name to replace agora's.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

ROLE_NAMES = ("user", "advertiser", "seller", "validator")


class RoleNotFound(LookupError):
    """A role the scenario needs is not installed as an `agora.roles` entry point."""


def load_roles() -> dict[str, ModuleType]:
    """Load every role module the economy needs, by entry-point name."""
    found = {ep.name: ep for ep in entry_points(group="agora.roles")}
    roles: dict[str, ModuleType] = {}
    for name in ROLE_NAMES:
        if name not in found:
            raise RoleNotFound(f"no `agora.roles` entry point named {name!r}: reinstall agora (`make bootstrap`)")
        module: Any = found[name].load()
        if not hasattr(module, "ROLE"):
            raise RoleNotFound(f"entry point {name!r} ({found[name].value}) has no ROLE")
        roles[name] = module
    return roles


def load_runtime() -> ModuleType:
    """The agent SDK module the simulator builds agents with (`agora.runtime` entry point named `sdk`).

    It exposes AgentSettings, AgentDeps, SimulatedClock, Wallet and Market.
    """
    found = {ep.name: ep for ep in entry_points(group="agora.runtime")}
    if "sdk" not in found:
        raise RoleNotFound("no `agora.runtime` entry point named 'sdk': reinstall agora (`make bootstrap`)")
    module: ModuleType = found["sdk"].load()
    return module
