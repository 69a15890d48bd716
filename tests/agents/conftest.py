"""Agent test fixtures: fresh agents with private data dirs, always stopped and removed from uAgents' dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from uagents.dispatch import dispatcher

from agents.base import AgentDeps, AgoraAgent
from agents.settings import AgentSettings


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[Callable[..., AgoraAgent]]:
    """Build AgoraAgents named `name` (seed = name) under tmp_path; all are stopped after the test."""
    built: list[AgoraAgent] = []

    def build(name: str, deps: AgentDeps | None = None, cls: type[AgoraAgent] = AgoraAgent, **kw: object) -> AgoraAgent:
        settings = AgentSettings(name=name, seed=f"seed-{name}", data_dir=tmp_path / name, **kw)  # type: ignore[arg-type]
        agent = cls(settings, deps)
        built.append(agent)
        return agent

    yield build
    for agent in reversed(built):
        await agent.stop()


@pytest.fixture(autouse=True)
def _dispatcher_clean() -> Iterator[None]:
    """uAgents registers agents process-wide and never forgets them: fail a test that leaks one."""
    before = set(dispatcher.sinks)
    yield
    leaked = set(dispatcher.sinks) - before
    for address in leaked:
        dispatcher.sinks.pop(address, None)
    assert not leaked, f"agents left registered in the uAgents dispatcher: {leaked}"
