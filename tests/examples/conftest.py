"""Fixtures for the examples: a registry on a temporary SQLite file, and role agents built as the runner builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from uagents.dispatch import dispatcher

from agents.base import AgentDeps, AgoraAgent
from agents.process import Factory
from agents.settings import AgentSettings
from agents.wallet import Wallet
from marketplace.chain import LocalChain
from marketplace.chain.node import free_port, rpc_call
from marketplace.registry.app import RegistrySettings, create_app

GAS_MONEY = 10**20
"""Native currency (wei) every agent account gets for transaction fees."""


@pytest.fixture
async def registry_url(tmp_path: Path) -> AsyncIterator[str]:
    """A registry serving on loopback for the test."""
    settings = RegistrySettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.sqlite3'}", ttl=3600)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def operator(tmp_path: Path) -> AsyncIterator[AgoraAgent]:
    """The agent that sends control commands (the role agents list it as their operator)."""
    agent = AgoraAgent(AgentSettings(name="operator", seed="examples-operator", data_dir=tmp_path / "operator"))
    await agent.start()
    yield agent
    await agent.stop()


RoleAgent = Callable[[str, Factory, dict[str, Any]], Awaitable[AgoraAgent]]
"""(name, role factory, options) → the started agent, with gas money; stopped after the test."""


@pytest.fixture
async def role_agent(
    tmp_path: Path, chain: LocalChain, registry_url: str, operator: AgoraAgent
) -> AsyncIterator[RoleAgent]:
    """Build and start role agents as the economy runner does (plain options, seed-derived wallet, gas money)."""
    manifest = chain.deployment.save(tmp_path / "deployment.json")
    common = {
        "rpc_url": chain.rpc_url,
        "manifest": str(manifest),
        "registry_url": registry_url,
        "operators": [operator.address],
    }
    built: list[AgoraAgent] = []

    async def build(name: str, factory: Factory, options: dict[str, Any]) -> AgoraAgent:
        wallet = Wallet.from_seed(f"examples:{name}")
        rpc_call(chain.rpc_url, "anvil_setBalance", [wallet.eth_address, hex(GAS_MONEY)])
        settings = AgentSettings(name=name, seed=f"examples:{name}", data_dir=tmp_path / "agents" / name)
        agent = factory(settings, AgentDeps(wallet=wallet), {**options, **common})
        built.append(agent)
        await agent.start()
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
