"""Where the registry gets receipt-backed reputation: a small protocol, an in-memory source, and the chain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from marketplace.registry.models import Reputation


@runtime_checkable
class ReputationSource(Protocol):
    """Reads the reputation of owner accounts (Ethereum addresses)."""

    async def reputation(self, owner: str) -> Reputation:
        """Reputation of one owner; an unknown owner has Reputation() (all zero)."""
        ...

    async def vouched_agent(self, owner: str) -> str | None:
        """The one agent address the owner vouches for ("" for none), or None when this source cannot tell.

        A card names its owner account, but anyone can write any account there; only the agent the
        owner itself vouches for (on chain: AgentRegistry.agentOf(owner)) inherits its reputation.
        """
        ...


class StaticReputation:
    """Reputation from a mapping (tests, demos without a chain); unknown owners score zero."""

    def __init__(self, table: Mapping[str, Reputation] | None = None) -> None:
        self.table = {k.lower(): v for k, v in (table or {}).items()}
        self.vouched: dict[str, str | None] = {}

    async def reputation(self, owner: str) -> Reputation:
        """The mapped reputation, or zero."""
        return self.table.get(owner.lower(), Reputation())

    async def vouched_agent(self, owner: str) -> str | None:
        """Unknown here (tests and demos trust the card's owner claim)."""
        return self.vouched.get(owner.lower())

    def set(self, owner: str, reputation: Reputation) -> None:
        """Change an owner's reputation (as a settled receipt would)."""
        self.table[owner.lower()] = reputation


class ChainReputation:
    """Reputation read from AgentRegistry through its typed client (marketplace.chain.agent_registry).

    The client is AgentRegistryClient or anything alike: `async reputation(owner)` returning an object with
    count, volume and score_bps (or score) or a (count, volume, score) tuple, and `async agent_of(owner)`.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    async def reputation(self, owner: str) -> Reputation:
        """The owner's receipts as AgentRegistry records them."""
        raw = await self.client.reputation(owner)
        if isinstance(raw, tuple):
            count, volume, score = raw
        else:
            # AgentRegistryClient reports the volume-weighted score in basis points (0-10_000).
            count, volume = raw.count, raw.volume
            score = raw.score_bps if hasattr(raw, "score_bps") else raw.score
        return Reputation(count=int(count), volume=int(volume), score=int(score))

    async def vouched_agent(self, owner: str) -> str | None:
        """The agent address the owner registered in AgentRegistry ("" when it registered none)."""
        record = await self.client.agent_of(owner)
        return "" if record is None else str(record.agent_address)

    @classmethod
    def for_deployment(cls, w3: Any, deployment: Any) -> ChainReputation:
        """Read-only AgentRegistry reputation over an existing web3 session (no funded key needed)."""
        from eth_account import Account

        from marketplace.chain.agent_registry import AgentRegistryClient
        from marketplace.chain.client import ChainConnection

        # Calls need a `from` address only; a throwaway key never signs anything here.
        conn = ChainConnection(w3, deployment, Account.create())
        return cls(AgentRegistryClient(conn))
