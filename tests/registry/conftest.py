"""Registry fixtures: identities, cards, a registry app on a temporary SQLite file, and a controllable clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from uagents_core.identity import Identity

from marketplace.chain import LocalChain
from marketplace.registry import RegistrySettings, RegistryStore, StaticReputation, create_app
from marketplace.registry.app import SERVICE, RegistryService
from protocols.cards import AgentCard, Offering, Role, SignedWrite, WriteAction, sign_write


class FakeClock:
    """A clock tests move by hand (starts at the real time so signed timestamps look normal)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def identity(name: str) -> Any:
    """A deterministic uAgents identity."""
    return Identity.from_seed(f"agora-registry-test-{name}", 0)


def owner_of(name: str) -> str:
    """A deterministic Ethereum-shaped owner account for a test agent."""
    import hashlib

    return "0x" + hashlib.sha256(name.encode()).hexdigest()[:40]


def make_card(
    who: Any,
    role: Role = "seller",
    offerings: list[Offering] | None = None,
    name: str = "",
    owner: str | None = None,
    endpoints: list[str] | None = None,
) -> AgentCard:
    """A valid card for identity `who`."""
    return AgentCard(
        address=who.address,
        role=role,
        name=name,
        endpoints=endpoints if endpoints is not None else [f"http://127.0.0.1:9000/{who.address[-6:]}"],
        protocols=["proto:" + "ab" * 32],
        offerings=offerings
        if offerings is not None
        else [Offering(model_id="two-tower-v1", job_kind="inference", price_per_unit=10**15, capacity=4)],
        owner=owner or owner_of(who.address),
    )


@dataclass
class Registry:
    """A running registry under test: HTTP client, service internals, clock and reputation table."""

    client: TestClient[Any, Any]
    service: RegistryService
    clock: FakeClock
    reputation: StaticReputation
    db_path: Path
    settings: RegistrySettings = field(default_factory=RegistrySettings)

    def sign(self, who: Any, action: WriteAction, card: AgentCard | None = None, **kw: Any) -> SignedWrite:
        """A write for this registry, signed now by the registry's clock."""
        kw.setdefault("timestamp", int(self.clock()))
        kw.setdefault("registry", self.service.registry_id)
        return sign_write(who, action, card, **kw)

    async def send(self, write: SignedWrite | dict[str, Any], address: str | None = None) -> tuple[int, Any]:
        """POST/PUT a write to the endpoint its action belongs to; returns (status, JSON body)."""
        body = write if isinstance(write, dict) else write.model_dump(mode="json")
        action = body.get("action")
        addr = address or body.get("address")
        method, path = {
            "register": ("POST", "/v1/agents"),
            "update": ("PUT", f"/v1/agents/{addr}"),
            "heartbeat": ("POST", f"/v1/agents/{addr}/heartbeat"),
            "deregister": ("POST", f"/v1/agents/{addr}/deregister"),
        }[str(action)]
        response = await self.client.request(method, path, json=body)
        return response.status, await response.json()

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        """GET a JSON endpoint."""
        response = await self.client.get(path, params={k: str(v) for k, v in params.items()})
        return response.status, await response.json()

    async def register(self, who: Any, card: AgentCard | None = None) -> AgentCard:
        """Register a card (default: make_card(who)) and assert it was accepted."""
        card = card or make_card(who)
        status, body = await self.send(self.sign(who, "register", card))
        assert status == 201, body
        return card


def registry_id_of(client: TestClient[Any, Any]) -> str:
    """The id a registry served by this test client expects in signed writes."""
    return client.app[SERVICE].registry_id


@pytest.fixture
def clock() -> FakeClock:
    """The registry's clock."""
    return FakeClock()


@pytest.fixture
async def registry(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Registry]:
    """A registry on a fresh SQLite file, served on loopback, with an in-memory reputation source."""
    db_path = tmp_path / "registry.db"
    settings = RegistrySettings(database_url=f"sqlite+aiosqlite:///{db_path}", ttl=120, max_clock_skew=60)
    store = await RegistryStore.open(settings.database_url)
    reputation = StaticReputation()
    app = create_app(settings, store=store, reputation=reputation, clock=clock)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Registry(client, app[SERVICE], clock, reputation, db_path, settings)
    finally:
        await client.close()
        await store.close()


@pytest.fixture
async def chain_registry(tmp_path: Path, chain: LocalChain) -> AsyncIterator[TestClient[Any, Any]]:
    """A registry wired to the session chain: events feed and, by default, reputation from AgentRegistry."""
    settings = RegistrySettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}",
        rpc_url=chain.rpc_url,
        deployment=chain.deployment,
        event_poll_interval=0.05,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
