"""Agent test fixtures: fresh agents with private data dirs, always stopped and removed from uAgents' dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from uagents.dispatch import dispatcher

from agents.base import AgentDeps, AgoraAgent
from agents.process import LOOPBACK_ONLY_ENV
from agents.settings import AgentSettings

SETTINGS_FIELDS = {f.name for f in fields(AgentSettings)}


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[Callable[..., AgoraAgent]]:
    """Build AgoraAgents named `name` (seed = name) under tmp_path; all are stopped after the test."""
    built: list[AgoraAgent] = []

    def build(name: str, deps: AgentDeps | None = None, cls: type[AgoraAgent] = AgoraAgent, **kw: Any) -> AgoraAgent:
        # Keyword arguments naming AgentSettings fields configure the settings; the rest go to `cls`.
        setting_kw = {k: v for k, v in kw.items() if k in SETTINGS_FIELDS}
        agent_kw = {k: v for k, v in kw.items() if k not in SETTINGS_FIELDS}
        settings = AgentSettings(name=name, seed=f"seed-{name}", data_dir=tmp_path / name, **setting_kw)
        agent = cls(settings, deps, **agent_kw)
        built.append(agent)
        return agent

    yield build
    for agent in reversed(built):
        await agent.stop()


@pytest.fixture(autouse=True, scope="session")
def _children_loopback_only() -> Iterator[None]:
    """Agents spawned in child processes get the same loopback-only guard as this process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOOPBACK_ONLY_ENV, "1")
        yield


@pytest.fixture(autouse=True)
def _dispatcher_clean() -> Iterator[None]:
    """uAgents registers agents process-wide and never forgets them: fail a test that leaks one."""
    before = set(dispatcher.sinks)
    yield
    leaked = set(dispatcher.sinks) - before
    for address in leaked:
        dispatcher.sinks.pop(address, None)
    assert not leaked, f"agents left registered in the uAgents dispatcher: {leaked}"
