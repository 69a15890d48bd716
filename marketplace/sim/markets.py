"""Market plug-ins: the runner finds markets through the `agora.markets` entry-point group.

Each entry point names an `agents.markets.plugin.Market` instance; a package installs its own market
(roles, scenario section, phases) by registering one, with no change to agora.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from agents.markets.plugin import Market


class MarketNotFound(LookupError):
    """A scenario names a market that no installed package registers under `agora.markets`."""


def installed_markets() -> dict[str, Market]:
    """Every registered market, by name."""
    found: dict[str, Market] = {}
    for ep in entry_points(group="agora.markets"):
        market = ep.load()
        if not isinstance(market, Market):
            raise MarketNotFound(f"entry point {ep.name!r} ({ep.value}) is not an agents.markets.plugin.Market")
        found[market.name] = market
    return found


def load_markets(names: list[str]) -> dict[str, Market]:
    """The markets a scenario uses, in its order; a clear error for one not installed."""
    installed = installed_markets()
    missing = [n for n in names if n not in installed]
    if missing:
        known = ", ".join(sorted(installed)) or "none"
        raise MarketNotFound(
            f"market {missing[0]!r} is not installed (installed: {known}); reinstall or add its package"
        )
    return {name: installed[name] for name in names}
