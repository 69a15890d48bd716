"""Scenario files: which markets run, with which participants, seeds, prices and faults.

name: default
seed: 7
markets:
  inference: {...}   # each market's own section (see `agora.markets` plugins)
  training: {...}
faults:
  - {kind: kill, agent: seller-d, phase: training}
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from agents.markets.plugin import Market, Participant
from marketplace.sim.markets import load_markets


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fault(_Strict):
    """An injected failure: stop an agent when a phase begins (or where the phase says)."""

    kind: Literal["kill"]
    agent: str
    phase: str


class Scenario(_Strict):
    """A whole economy run: markets (by name, each with its own section), seed, faults."""

    name: str
    seed: int = 7
    markets: dict[str, Any] = Field(min_length=1)
    faults: list[Fault] = Field(default_factory=list)
    _plugins: dict[str, Market] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _sections_valid(self) -> Scenario:
        self._plugins = load_markets(list(self.markets))
        for name, plugin in self._plugins.items():
            # Parsed once here, so a bad section is reported before anything starts.
            self.markets[name] = plugin.section.model_validate(self.markets[name] or {})
        names = {p.name for p in self.participants()}
        for fault in self.faults:
            if fault.agent not in names:
                raise ValueError(f"fault targets unknown agent {fault.agent!r} (known: {', '.join(sorted(names))})")
        return self

    @property
    def plugins(self) -> dict[str, Market]:
        """The markets this scenario runs, in file order."""
        return self._plugins

    def participants(self) -> list[Participant]:
        """Every agent of the run: the union over markets, merged by name (same role; options and money add up)."""
        merged: dict[str, Participant] = {}
        for name, plugin in self.plugins.items():
            for p in plugin.participants(self.markets[name], self.seed):
                known = merged.get(p.name)
                if known is None:
                    merged[p.name] = p
                    continue
                if known.role != p.role or known.factory != p.factory:
                    raise ValueError(f"{p.name!r} is a {known.role} in one market and a {p.role} in another")
                merged[p.name] = known.model_copy(
                    update={
                        "funding": known.funding + p.funding,
                        "stake": known.stake + p.stake,
                        "options": {**known.options, **p.options},
                    }
                )
        return list(merged.values())

    @property
    def agent_count(self) -> int:
        """How many agents take part."""
        return len(self.participants())


def load_scenario(path: Path | None = None) -> Scenario:
    """Read a scenario YAML file; without a path, the embedded default scenario."""
    if path is None:
        text = resources.files("marketplace.sim.scenarios").joinpath("default.yaml").read_text()
    else:
        text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path or 'default scenario'}: expected a mapping at the top level")
    return Scenario.model_validate(data)
