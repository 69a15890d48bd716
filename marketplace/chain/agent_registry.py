"""Typed client for AgentRegistry: agent identities and receipt-backed reputation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from web3.types import TxReceipt

from marketplace.chain.base import ContractClient
from marketplace.chain.client import ChainError


class UnexpectedRecorders(ChainError):
    """AgentRegistry's recorder set is not frozen to the deployment's settlement contracts: its reputation
    aggregates could hold receipts no payment backs."""


class AgentRole(IntEnum):
    """An agent's role, as the contract's Role enum."""

    USER = 0
    ADVERTISER = 1
    SELLER = 2
    VALIDATOR = 3


@dataclass(frozen=True)
class AgentRecord:
    """An on-chain agent identity."""

    owner: str
    agent_address: str
    metadata_uri: str
    role: AgentRole
    registered_at: int


@dataclass(frozen=True)
class Reputation:
    """Aggregated paid receipts of an account."""

    count: int
    volume: int
    score_bps: int
    """Volume-weighted score scaled to 0-10_000 (a score of 100 on every receipt is 10_000)."""


@dataclass(frozen=True)
class AgentRegistered:
    """An AgentRegistered event."""

    owner: str
    agent_address: str
    role: AgentRole
    metadata_uri: str


@dataclass(frozen=True)
class ReceiptRecorded:
    """A ReceiptRecorded event: a paid settlement for `subject`."""

    subject: str
    recorder: str
    job_ref: bytes
    score: int
    amount: int


class AgentRegistryClient(ContractClient):
    """AgentRegistry seen from one signer."""

    contract_name = "AgentRegistry"

    async def register(self, agent_address: str, role: AgentRole, metadata_uri: str = "") -> AgentRegistered:
        """Register (or re-register) this signer's agent identity."""
        fn = self.contract.functions.register(agent_address, int(role), metadata_uri)
        return self._one(
            await self._send(fn),
            "AgentRegistered",
            lambda a: AgentRegistered(a["owner"], a["agentAddress"], AgentRole(a["role"]), a["metadataURI"]),
        )

    async def update_metadata(self, metadata_uri: str) -> None:
        """Change this signer's metadata URI."""
        await self._send(self.contract.functions.updateMetadata(metadata_uri))

    async def add_recorder(self, recorder: str) -> None:
        """Propose a settlement contract as a recorder (owner only, before the set is frozen)."""
        await self._send(self.contract.functions.addRecorder(self._cs(recorder)))

    async def freeze_recorders(self) -> list[str]:
        """Fix the proposed recorders for good and renounce ownership (owner only, once); the frozen set."""
        return self._one(
            await self._send(self.contract.functions.freezeRecorders()),
            "RecordersFrozen",
            lambda a: [str(r) for r in a["recorders"]],
        )

    async def record_receipt(self, subject: str, score: int, amount: int, job_ref: bytes) -> ReceiptRecorded:
        """Write a receipt directly (recorder contracts only: an account gets NotRecorder)."""
        fn = self.contract.functions.recordReceipt(self._cs(subject), score, amount, job_ref)
        return self._one(await self._send(fn), "ReceiptRecorded", _receipt)

    async def agent_of(self, owner: str) -> AgentRecord | None:
        """The identity of an account, or None when it never registered."""
        agent_address, uri, role, registered_at = await self.conn.call(self.contract.functions.agentOf(self._cs(owner)))
        if registered_at == 0:
            return None
        return AgentRecord(self._cs(owner), agent_address, uri, AgentRole(role), registered_at)

    async def is_recorder(self, account: str) -> bool:
        """Whether an account may write receipts."""
        allowed: bool = await self.conn.call(self.contract.functions.isRecorder(self._cs(account)))
        return allowed

    async def recorders(self) -> list[str]:
        """The recorder contracts (once frozen: every address that may ever write a receipt)."""
        found: list[str] = await self.conn.call(self.contract.functions.recorders())
        return [self._cs(a) for a in found]

    async def recorders_frozen(self) -> bool:
        """Whether the recorder set is fixed for good (only then can receipts be written)."""
        frozen: bool = await self.conn.call(self.contract.functions.recordersFrozen())
        return frozen

    async def require_recorders(self, expected: list[str]) -> None:
        """Raise UnexpectedRecorders unless the set is frozen to exactly `expected` (the deployment's settlements)."""
        found, frozen = await self.recorders(), await self.recorders_frozen()
        if not frozen or [a.lower() for a in found] != [a.lower() for a in expected]:
            state = "frozen" if frozen else "not frozen"
            raise UnexpectedRecorders(f"AgentRegistry recorders are {found} ({state}); expected {expected}, frozen")

    async def reputation(self, subject: str) -> Reputation:
        """Receipt count, paid volume and volume-weighted score of an account."""
        count, volume, score_bps = await self.conn.call(self.contract.functions.reputation(self._cs(subject)))
        return Reputation(count, volume, score_bps)

    def receipts_in(self, receipt: TxReceipt) -> list[ReceiptRecorded]:
        """ReceiptRecorded events in a transaction receipt (e.g. of an escrow completion)."""
        return self._decode(receipt, "ReceiptRecorded", _receipt)


def _receipt(args: dict[str, Any]) -> ReceiptRecorded:
    return ReceiptRecorded(
        str(args["subject"]), str(args["recorder"]), bytes(args["jobRef"]), int(args["score"]), int(args["amount"])
    )
