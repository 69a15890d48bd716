"""Where the registry gets reputation: a small protocol, an in-memory source, and paid receipts read from the chain.

A rank score is computed here, off chain, from AgentRegistry's receipts, each attributed to the account that
paid it (docs/reputation.md): volume counts only up to a cap per payer, a top rank needs many distinct payers,
and old payments fade with a half-life.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from eth_utils.abi import event_abi_to_log_topic

from marketplace.registry.models import Reputation

log = logging.getLogger(__name__)

AGT = 10**18
DAY = 86_400.0
FULL_SCORE = 10_000
"""Scores are reported in basis points of a perfect 100: rank score 90 is 9_000."""
LOG_CHUNK = 2_000
"""Blocks per eth_getLogs request while catching up."""


@dataclass(frozen=True)
class ReputationPolicy:
    """How paid receipts become a rank score; the defaults are the ones docs/reputation.md prices."""

    half_life: float = 30 * DAY
    """Seconds after which a payment counts half."""
    full_payer: int = AGT
    """Decayed volume (base units) from one payer at which it counts as one whole distinct counterparty."""
    payer_cap: int = 10 * AGT
    """Decayed volume (base units) from one payer beyond which more of its payments add nothing."""
    half_volume: int = 50 * AGT
    """Capped volume (base units) that earns half of the volume factor."""
    half_payers: float = 10.0
    """Distinct counterparties that earn half of the diversity factor."""

    def decay(self, age: float) -> float:
        """Weight of a payment `age` seconds old (1 when new, 1/2 after a half-life; never above 1)."""
        return 1.0 if age <= 0 else 0.5 ** (age / self.half_life)

    def score(self, volumes: Iterable[float]) -> int:
        """Rank score in basis points (0-10_000) from the decayed volume each distinct payer paid."""
        capped = 0.0
        payers = 0.0
        for volume in volumes:
            capped += min(volume, self.payer_cap)
            payers += min(volume, self.full_payer) / self.full_payer
        return math.floor(FULL_SCORE * _saturation(capped / self.half_volume) * _saturation(payers / self.half_payers))


def _saturation(halvings: float) -> float:
    """1 - 2^-x: 0 at 0, 1/2 at 1, approaching 1; concave, so each further unit adds less."""
    return -math.expm1(-halvings * math.log(2))


@dataclass(frozen=True)
class PaidReceipt:
    """One settled payment to a subject: who paid, how much, when (chain time) and its quality score 0-100."""

    payer: str
    amount: int
    time: float
    quality: int = 100


@dataclass
class CounterpartyBook:
    """One subject's paid receipts, folded per payer into a volume that decays with time."""

    subject: str
    count: int = 0
    volume: int = 0
    _payers: dict[str, tuple[float, float]] = field(default_factory=dict)
    """payer -> (decayed volume, the time it is decayed to)."""

    def add(self, receipt: PaidReceipt, policy: ReputationPolicy) -> None:
        """Book a receipt; a payment from the subject to itself earns nothing."""
        payer = receipt.payer.lower()
        if payer == self.subject.lower() or receipt.amount <= 0:
            return
        self.count += 1
        self.volume += receipt.amount
        weighted = receipt.amount * min(max(receipt.quality, 0), 100) / 100
        held, at = self._payers.get(payer, (0.0, receipt.time))
        if receipt.time >= at:
            self._payers[payer] = (held * policy.decay(receipt.time - at) + weighted, receipt.time)
        else:
            self._payers[payer] = (held + weighted * policy.decay(at - receipt.time), at)

    def volumes(self, now: float, policy: ReputationPolicy) -> dict[str, float]:
        """Each payer's volume decayed to `now`."""
        return {payer: held * policy.decay(now - at) for payer, (held, at) in self._payers.items()}

    def reputation(self, now: float, policy: ReputationPolicy) -> Reputation:
        """Receipts, paid volume and rank score as of `now`."""
        score = policy.score(self.volumes(now, policy).values())
        return Reputation(count=self.count, volume=self.volume, score=score)


def score_receipts(
    subject: str, receipts: Iterable[PaidReceipt], now: float, policy: ReputationPolicy | None = None
) -> Reputation:
    """The reputation of `subject` given every receipt paid to it."""
    policy = policy or ReputationPolicy()
    book = CounterpartyBook(subject)
    for receipt in receipts:
        book.add(receipt, policy)
    return book.reputation(now, policy)


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


_WATCHED = {
    "AgentRegistry": ("ReceiptRecorded",),
    "PaymentChannels": ("ChannelOpened", "ChannelClaimed"),
    "JobEscrow": ("JobCreated",),
}
"""The logs a paid receipt is rebuilt from: the receipt, and who opened each channel or job it settles."""


class ReceiptLedger:
    """Paid receipts of a deployment read from its logs, each attributed to the account that paid.

    Only receipts written by the deployment's own settlement contracts count: they record inside a transfer
    of tokens whose payer the same logs name (a channel's sender, a job's client). A receipt from any other
    recorder names no payer and moves nothing the registry can check, so it earns nothing.
    """

    def __init__(self, w3: Any, deployment: Any, policy: ReputationPolicy) -> None:
        self.w3 = w3
        self.policy = policy
        self._contracts: dict[str, Any] = {}
        self._topics: dict[bytes, tuple[str, str]] = {}
        for name, events in _WATCHED.items():
            if name not in deployment.contracts:
                continue
            abi = deployment.abi(name)
            self._contracts[name] = w3.eth.contract(address=w3.to_checksum_address(deployment.address(name)), abi=abi)
            for entry in abi:
                if entry.get("type") == "event" and entry["name"] in events:
                    self._topics[bytes(event_abi_to_log_topic(entry))] = (name, entry["name"])
        self._first_block = min((deployment.contracts[n].block for n in self._contracts), default=0)
        self._lock = asyncio.Lock()
        self._reset()

    def _reset(self) -> None:
        self.books: dict[str, CounterpartyBook] = {}
        self.now = 0.0
        """Timestamp of the newest block read: the clock payments decay by."""
        self._next_block = self._first_block
        self._tip: tuple[int, bytes] | None = None
        self._senders: dict[int, str] = {}
        self._clients: dict[int, str] = {}

    def book(self, subject: str) -> CounterpartyBook:
        """The receipts of `subject` read so far."""
        return self.books.get(subject.lower()) or CounterpartyBook(subject.lower())

    async def sync(self) -> None:
        """Read the blocks added since the last call (all of them again if the chain was rolled back)."""
        if "AgentRegistry" not in self._contracts:
            return
        async with self._lock:
            head = await self.w3.eth.get_block("latest")
            if self._tip is not None:
                if bytes(head["hash"]) == self._tip[1]:
                    return
                seen = await self.w3.eth.get_block(self._tip[0]) if head["number"] >= self._tip[0] else None
                if seen is None or bytes(seen["hash"]) != self._tip[1]:
                    # A reorg or a reverted test snapshot: what was read may never have happened.
                    self._reset()
            while self._next_block <= head["number"]:
                last = min(head["number"], self._next_block + LOG_CHUNK - 1)
                await self._read(self._next_block, last)
                self._next_block = last + 1
            self._tip = (int(head["number"]), bytes(head["hash"]))
            self.now = float(head["timestamp"])

    async def _read(self, first: int, last: int) -> None:
        logs = await self.w3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": [c.address for c in self._contracts.values()],
                "topics": [["0x" + t.hex() for t in self._topics]],
            }
        )
        claims: dict[bytes, list[tuple[str, str, int]]] = {}
        times: dict[int, float] = {}
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"]))):
            topics = entry["topics"]
            known = self._topics.get(bytes(topics[0])) if topics else None
            if known is None or entry["address"] != self._contracts[known[0]].address:
                continue
            contract, event = known
            args = dict(self._contracts[contract].events[event]().process_log(entry)["args"])
            tx = bytes(entry["transactionHash"])
            if event == "ChannelOpened":
                self._senders[int(args["channelId"])] = str(args["sender"]).lower()
            elif event == "JobCreated":
                self._clients[int(args["jobId"])] = str(args["client"]).lower()
            elif event == "ChannelClaimed":
                payer = self._senders.get(int(args["channelId"]), "")
                claims.setdefault(tx, []).append((str(args["recipient"]).lower(), payer, int(args["amount"])))
            else:
                block = int(entry["blockNumber"])
                if block not in times:
                    times[block] = float((await self.w3.eth.get_block(block))["timestamp"])
                self._book(args, claims, tx, times[block])

    def _book(
        self, receipt: dict[str, Any], claims: dict[bytes, list[tuple[str, str, int]]], tx: bytes, time: float
    ) -> None:
        """Attribute one ReceiptRecorded to its payers and book it on its subject."""
        subject = str(receipt["subject"]).lower()
        recorder = str(receipt["recorder"])
        quality = int(receipt["score"])
        if "PaymentChannels" in self._contracts and recorder == self._contracts["PaymentChannels"].address:
            # The channel claims logged before this receipt in its transaction, and after any earlier one,
            # are what it settles (claim and claimMany book every channel, then record once).
            paid = [
                PaidReceipt(payer, amount, time, quality)
                for to, payer, amount in claims.pop(tx, [])
                if to == subject and payer
            ]
        elif "JobEscrow" in self._contracts and recorder == self._contracts["JobEscrow"].address:
            client = self._clients.get(int.from_bytes(bytes(receipt["jobRef"]), "big"), "")
            paid = [PaidReceipt(client, int(receipt["amount"]), time, quality)] if client else []
        else:
            log.debug("receipt for %s from recorder %s ignored: not a settlement contract", subject, recorder)
            return
        book = self.books.setdefault(subject, CounterpartyBook(subject))
        for one in paid:
            book.add(one, self.policy)


class ChainReputation:
    """Reputation of owner accounts from the paid receipts AgentRegistry holds, scored by ReputationPolicy.

    The client is an AgentRegistryClient (marketplace.chain.agent_registry): its connection names the chain
    and the deployment whose logs are read, and it answers which agent an owner vouches for.
    """

    def __init__(self, client: Any, policy: ReputationPolicy | None = None) -> None:
        self.client = client
        self.policy = policy or ReputationPolicy()
        self.ledger = ReceiptLedger(client.conn.w3, client.conn.deployment, self.policy)

    async def reputation(self, owner: str) -> Reputation:
        """The owner's paid receipts and rank score as of the newest block."""
        await self.ledger.sync()
        return self.ledger.book(owner).reputation(self.ledger.now, self.policy)

    async def vouched_agent(self, owner: str) -> str | None:
        """The agent address the owner registered in AgentRegistry ("" when it registered none)."""
        record = await self.client.agent_of(owner)
        return "" if record is None else str(record.agent_address)

    @classmethod
    def for_deployment(cls, w3: Any, deployment: Any, policy: ReputationPolicy | None = None) -> ChainReputation:
        """Read-only reputation over an existing web3 session (no funded key needed)."""
        from eth_account import Account

        from marketplace.chain.agent_registry import AgentRegistryClient
        from marketplace.chain.client import ChainConnection

        # Calls need a `from` address only; a throwaway key never signs anything here.
        conn = ChainConnection(w3, deployment, Account.create())
        return cls(AgentRegistryClient(conn), policy)
