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
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

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
    concurrency: int = Field(default=1, ge=1, le=256)
    """How many agents a phase drives at once. 1: one after another, so the seed fixes the whole report; more:
    faster on large economies, but the order of transactions (and so committee draws) varies between runs."""
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


EMBEDDED = "marketplace.sim.scenarios"
"""The package holding the scenarios `agora demo NAME` runs (`agora demo --list`)."""


class ScenarioError(ValueError):
    """A scenario file with problems: one line per problem, with its YAML path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{source}: {count}\n  " + "\n  ".join(problems))


def embedded_scenarios() -> dict[str, str]:
    """Name → one-line description (the file's first comment) of every embedded scenario."""
    found = {}
    for entry in sorted(resources.files(EMBEDDED).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = entry.read_text().splitlines()[0] if entry.read_text() else ""
            found[entry.name.removesuffix(".yaml")] = first.lstrip("# ").strip()
    return found


def scenario_text(name: str = "default") -> str:
    """The YAML of an embedded scenario."""
    if name not in embedded_scenarios():
        raise ScenarioError(name, [f"no embedded scenario {name!r} (known: {', '.join(embedded_scenarios())})"])
    return resources.files(EMBEDDED).joinpath(f"{name}.yaml").read_text()


def load_scenario(path: Path | None = None) -> Scenario:
    """Read a scenario: a YAML file, the name of an embedded scenario, or (None) the embedded default."""
    if path is None or (not path.exists() and path.suffix == "" and path.name in embedded_scenarios()):
        name = "default" if path is None else path.name
        return parse_scenario(yaml.safe_load(scenario_text(name)), f"scenario {name!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"not valid YAML: {str(exc).splitlines()[0]}"]) from exc
    return parse_scenario(data if data is not None else {}, str(path), default_name=path.stem)


def scale_scenario(agents: int) -> Scenario:
    """The embedded `scale` scenario cut to `agents` agents in all: its sellers and advertisers, one validator per
    20 agents (at least 4), the rest users (bench/scale.py's sizes, and smaller runs of it in tests)."""
    data = yaml.safe_load(scenario_text("scale"))
    inference = data["markets"]["inference"]
    others = len(inference["sellers"]) + data["markets"]["training"]["advertisers"]
    inference["validators"] = max(4, agents // 20)
    inference["users"] = agents - others - inference["validators"]
    if inference["users"] < 1:
        raise ValueError(f"{agents} agents leave no users (the scale scenario has {others} sellers and advertisers)")
    data["name"] = f"scale-{agents}"
    return parse_scenario(data, f"scale scenario of {agents} agents")


def parse_scenario(data: object, source: str, default_name: str = "custom") -> Scenario:
    """Validate scenario data; every field has a default (the default scenario's markets), and a top-level
    `users: N` sets every market's users. Problems are reported together, one line each (ScenarioError)."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["expected a mapping at the top level"])
    data = dict(data)
    data.setdefault("name", default_name)
    if "markets" not in data:
        data["markets"] = yaml.safe_load(scenario_text("default"))["markets"]
    users = data.pop("users", None)
    problems: list[str] = []
    markets = data["markets"]
    if isinstance(markets, dict):
        try:
            plugins = load_markets(list(markets))
        except LookupError as exc:
            raise ScenarioError(source, [f"markets: {exc}"]) from exc
        for name, plugin in plugins.items():
            section = dict(markets[name] or {})
            if users is not None and "users" in plugin.section.model_fields:
                section["users"] = users
            markets[name] = section
            try:
                plugin.section.model_validate(section)
            except ValidationError as exc:
                problems += _problems(exc, f"markets.{name}")
    if problems:
        raise ScenarioError(source, problems)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, _problems(exc, "")) from None


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    """One line per pydantic error: YAML path, what is allowed, what was given."""
    lines = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else message
        given = f" (got {error['input']!r})" if error["type"] not in ("missing", "value_error") else ""
        lines.append(f"{path or 'scenario'}: {message}{given}")
    return lines
