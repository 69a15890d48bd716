"""A uAgents resolver backed by the registry: the offline stand-in for the Almanac."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
from uagents.resolver import Resolver
from uagents_core.identity import parse_identifier

from marketplace.registry.client import RegistryClient, RegistryError


class RegistryResolver(Resolver):  # type: ignore[misc]  # uagents ships no type information
    """Resolves `agent1…` addresses (optionally `prefix://name/agent1…`) to endpoints through the registry."""

    def __init__(
        self,
        registry: str | RegistryClient,
        *,
        max_endpoints: int | None = None,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = registry if isinstance(registry, RegistryClient) else RegistryClient(registry)
        self.max_endpoints = max_endpoints
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def resolve(self, destination: str) -> tuple[str | None, list[str]]:
        """(address, endpoints) for a listed agent; (None, []) when unknown or the registry is unreachable."""
        _, _, address = parse_identifier(destination)
        if not address:
            return None, []
        cached = self._cache.get(address)
        if cached is not None and self.clock() - cached[0] < self.cache_seconds:
            endpoints = cached[1]
        else:
            try:
                found = await self.client.resolve(address)
            except (RegistryError, aiohttp.ClientError, TimeoutError):
                return None, []
            if not found:
                self._cache.pop(address, None)
                return None, []
            endpoints = found
            self._cache[address] = (self.clock(), endpoints)
        if self.max_endpoints is not None:
            endpoints = endpoints[: self.max_endpoints]
        return address, list(endpoints)

    async def close(self) -> None:
        """Close the underlying client session."""
        await self.client.close()
