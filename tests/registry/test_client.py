"""The agent-side client and the registry-backed uAgents resolver against a live registry."""

from __future__ import annotations

import asyncio

import pytest

from marketplace.registry import RegistryClient, RegistryError
from marketplace.registry.resolver import RegistryResolver
from tests.registry.conftest import Registry, identity, make_card


def _url(registry: Registry) -> str:
    return str(registry.client.make_url("/"))


async def test_client_publishHeartbeatSearchResolveDeregister(registry: Registry) -> None:
    alice = identity("alice")
    card = make_card(alice, name="alice")
    async with RegistryClient(_url(registry), alice, clock=registry.clock) as client:
        entry = await client.publish(card)
        assert entry.card == card
        again = await client.publish(card.model_copy(update={"name": "alice 2"}))  # already listed: updates
        assert again.card.name == "alice 2"
        registry.clock.advance(5)
        accepted = await client.heartbeat()
        assert accepted.expires_at == registry.clock() + 120
        page = await client.search(role="seller", job_kind="inference", max_price=10**16)
        assert [e.card.address for e in page.results] == [alice.address]
        assert page.next_offset is None
        assert await client.resolve(alice.address) == card.endpoints
        assert (await client.get(alice.address)) is not None
        await client.deregister()
        assert await client.resolve(alice.address) is None
        assert await client.get(alice.address) is None
        with pytest.raises(RegistryError) as refused:
            await client.heartbeat()
        assert refused.value.code == "not_found"


async def test_client_withoutIdentity_readsOnly(registry: Registry) -> None:
    async with RegistryClient(_url(registry)) as client:
        assert (await client.search()).results == []
        with pytest.raises(ValueError, match="no identity"):
            await client.heartbeat()


async def test_client_backgroundHeartbeats_republishLapsedEntry(registry: Registry) -> None:
    alice = identity("alice")
    card = make_card(alice)
    async with RegistryClient(_url(registry), alice, clock=registry.clock) as client:
        await client.publish(card)
        await client.deregister()  # as if the entry had lapsed
        client.start_heartbeats(0.01, card)
        for _ in range(200):
            if await client.resolve(alice.address):
                break
            await asyncio.sleep(0.01)
        assert await client.resolve(alice.address) == card.endpoints


async def test_resolver_resolvesListedAgents(registry: Registry) -> None:
    alice = identity("alice")
    card = make_card(alice, endpoints=["http://127.0.0.1:8101/submit", "http://127.0.0.1:8102/submit"])
    await registry.register(alice, card)
    resolver = RegistryResolver(_url(registry), max_endpoints=1)
    try:
        assert await resolver.resolve(alice.address) == (alice.address, ["http://127.0.0.1:8101/submit"])
        assert await resolver.resolve(f"test-agent://alice/{alice.address}") == (
            alice.address,
            ["http://127.0.0.1:8101/submit"],
        )
        assert await resolver.resolve(identity("nobody").address) == (None, [])
        assert await resolver.resolve("not-an-address") == (None, [])
    finally:
        await resolver.close()


async def test_resolver_registryDown_unresolved() -> None:
    resolver = RegistryResolver("http://127.0.0.1:9", cache_seconds=0)
    try:
        assert await resolver.resolve(identity("alice").address) == (None, [])
    finally:
        await resolver.close()


async def test_resolver_isAUagentsResolver() -> None:
    from uagents.resolver import Resolver

    resolver = RegistryResolver("http://127.0.0.1:9")
    assert isinstance(resolver, Resolver)
    await resolver.close()
