"""The marketplace registry: signed agent cards, search, address resolution, reputation from chain, dashboard.

Agents use `RegistryClient` (publish, heartbeat, search, resolve) and `RegistryResolver` (a uAgents
resolver backed by the registry, in marketplace.registry.resolver). Operators run `agora registry serve`.
"""

from marketplace.registry.app import RegistryService, RegistrySettings, create_app
from marketplace.registry.client import RegistryClient, RegistryError
from marketplace.registry.models import AgentEntry, Reputation, SearchPage, SearchQuery
from marketplace.registry.reputation import ChainReputation, ReputationSource, StaticReputation
from marketplace.registry.storage import RegistryStore

__all__ = [
    "AgentEntry",
    "ChainReputation",
    "RegistryClient",
    "RegistryError",
    "RegistryService",
    "RegistrySettings",
    "RegistryStore",
    "Reputation",
    "ReputationSource",
    "SearchPage",
    "SearchQuery",
    "StaticReputation",
    "create_app",
]
