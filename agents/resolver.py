"""Pluggable address → endpoint resolution; a static directory for tests and fixed deployments."""

from __future__ import annotations

from collections.abc import Mapping

from uagents.resolver import Resolver
from uagents_core.identity import parse_identifier


class StaticResolver(Resolver):  # type: ignore[misc]  # uagents is untyped
    """A fixed (mutable) directory of agent addresses to HTTP endpoints; never touches the network."""

    def __init__(self, directory: Mapping[str, list[str] | str] | None = None) -> None:
        self._directory: dict[str, list[str]] = {}
        for address, endpoints in (directory or {}).items():
            self.add(address, endpoints)

    def add(self, address: str, endpoints: list[str] | str) -> None:
        """Add or replace the endpoints of an address."""
        self._directory[address] = [endpoints] if isinstance(endpoints, str) else list(endpoints)

    def remove(self, address: str) -> None:
        """Forget an address."""
        self._directory.pop(address, None)

    def endpoints(self, address: str) -> list[str]:
        """The endpoints known for an address (empty if unknown)."""
        return list(self._directory.get(address, []))

    async def resolve(self, destination: str) -> tuple[str | None, list[str]]:
        """uAgents Resolver interface: (address, endpoints) or (None, []) when unknown."""
        _, _, address = parse_identifier(destination)
        endpoints = self._directory.get(address or destination)
        if not endpoints:
            return None, []
        return address or destination, list(endpoints)


class FirstOfResolver(Resolver):  # type: ignore[misc]  # uagents is untyped
    """Asks several resolvers in order and returns the first answer with endpoints (e.g. static, then registry)."""

    def __init__(self, *resolvers: Resolver) -> None:
        self.resolvers = resolvers

    async def resolve(self, destination: str) -> tuple[str | None, list[str]]:
        """uAgents Resolver interface: the first (address, endpoints) found, or (None, [])."""
        for resolver in self.resolvers:
            address, endpoints = await resolver.resolve(destination)
            if address and endpoints:
                return address, list(endpoints)
        return None, []
