"""The dashboard's live feed: economy events read from the chain, fanned out to SSE subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eth_utils.abi import event_abi_to_log_topic
from web3 import AsyncHTTPProvider, AsyncWeb3

from marketplace.chain.manifest import Deployment
from marketplace.registry.models import EconomyEvent

log = logging.getLogger(__name__)

WATCHED_CONTRACTS: list[tuple[str, Sequence[str] | None]] = [
    ("AgoraToken", ["Transfer"]),
    ("AgentRegistry", None),
    ("JobEscrow", None),
    ("PaymentChannels", None),
    ("ModelRegistry", None),
    ("ValidatorStaking", None),
    ("FederatedRewards", None),
    ("AdCampaigns", None),
]
"""(contract, event names or None for all its events). Contracts missing from the manifest are skipped,
so new contracts show up in the feed as soon as they are deployed."""

TOKEN_DECIMALS = 18


class EventFeed:
    """A bounded history of events plus a queue per live subscriber."""

    def __init__(self, history: int = 200, queue_size: int = 1000) -> None:
        self._history: deque[EconomyEvent] = deque(maxlen=history)
        self._seen: set[str] = set()
        self._subscribers: set[asyncio.Queue[tuple[str, str] | None]] = set()
        self._queue_size = queue_size
        self._observers: list[Callable[[EconomyEvent], None]] = []

    def observe(self, observer: Callable[[EconomyEvent], None]) -> None:
        """Call observer with every new event, once, in the order published (the economy view folds them)."""
        self._observers.append(observer)

    def publish(self, event: EconomyEvent) -> None:
        """Record an event (once per id) and push it to every subscriber."""
        if event.id in self._seen:
            return
        if len(self._history) == self._history.maxlen:
            self._seen.discard(self._history[0].id)
        self._history.append(event)
        self._seen.add(event.id)
        for observer in self._observers:
            observer(event)
        self._push("chain", event.model_dump_json())

    def notify(self, kind: str, payload: str) -> None:
        """Push a non-chain notice (e.g. `agents` when the registry changed) to subscribers."""
        self._push(kind, payload)

    def _push(self, kind: str, payload: str) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                # A stalled dashboard must not grow memory; it loses the oldest pending item instead.
                queue.get_nowait()
            queue.put_nowait((kind, payload))

    def recent(self, limit: int = 50) -> list[EconomyEvent]:
        """The latest events, oldest first."""
        return list(self._history)[-limit:]

    def subscribe(self) -> asyncio.Queue[tuple[str, str] | None]:
        """A queue of (event kind, JSON payload); None means the feed is closing."""
        queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, str] | None]) -> None:
        """Stop delivering to queue."""
        self._subscribers.discard(queue)

    def close(self) -> None:
        """Tell every subscriber to finish."""
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    @property
    def subscriber_count(self) -> int:
        """How many streams are attached."""
        return len(self._subscribers)


class EventSource(Protocol):
    """Turns a block range into economy events."""

    name: str

    async def fetch(self, from_block: int, to_block: int) -> list[EconomyEvent]:
        """Events in [from_block, to_block], in chain order."""
        ...


def format_amount(value: int, decimals: int = TOKEN_DECIMALS) -> str:
    """Exact decimal rendering of base units (no floats)."""
    whole, frac = divmod(value, 10**decimals)
    frac_text = str(frac).zfill(decimals).rstrip("0")
    return f"{whole}.{frac_text}" if frac_text else str(whole)


def _short(value: str) -> str:
    return value[:6] + "…" + value[-4:] if value.startswith("0x") and len(value) == 42 else value


def _summarize(contract: str, event: str, args: dict[str, Any]) -> str:
    if contract == "AgoraToken" and event == "Transfer":
        return f"{_short(str(args['from']))} → {_short(str(args['to']))}: {format_amount(int(args['value']))} AGT"
    rendered = ", ".join(f"{k}={_short(str(v))}" for k, v in args.items())
    return f"{event}({rendered})"


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        # Arrays (a committee's members and weights) as comma-separated items, parseable without eval.
        return ",".join(_render(item) for item in value)
    return str(value)


class ContractEventSource:
    """Events of one deployed contract (all of them, or the named ones), decoded with its ABI."""

    def __init__(
        self, w3: AsyncWeb3[AsyncHTTPProvider], deployment: Deployment, contract: str, events: Sequence[str] | None
    ) -> None:
        self.name = contract
        self.w3 = w3
        abi = deployment.abi(contract)
        self.contract = w3.eth.contract(address=w3.to_checksum_address(deployment.address(contract)), abi=abi)
        self.topics: dict[bytes, str] = {}
        for entry in abi:
            if entry.get("type") == "event" and (events is None or entry["name"] in events):
                self.topics[bytes(event_abi_to_log_topic(entry))] = entry["name"]  # type: ignore[arg-type]
        self._block_times: dict[int, float] = {}

    async def fetch(self, from_block: int, to_block: int) -> list[EconomyEvent]:
        """Decode this contract's matching logs in the range."""
        logs = await self.w3.eth.get_logs(
            {"fromBlock": from_block, "toBlock": to_block, "address": self.contract.address}
        )
        out: list[EconomyEvent] = []
        for entry in logs:
            topics = entry["topics"]
            if not topics or bytes(topics[0]) not in self.topics:
                continue
            name = self.topics[bytes(topics[0])]
            decoded = self.contract.events[name]().process_log(entry)
            args = {k: _render(v) for k, v in dict(decoded["args"]).items()}
            block = int(entry["blockNumber"])
            out.append(
                EconomyEvent(
                    id=f"0x{bytes(entry['transactionHash']).hex()}:{int(entry['logIndex'])}",
                    source=self.name,
                    contract=self.name,
                    event=name,
                    block=block,
                    tx_hash="0x" + bytes(entry["transactionHash"]).hex(),
                    log_index=int(entry["logIndex"]),
                    time=await self._block_time(block),
                    args=args,
                    summary=_summarize(self.name, name, dict(decoded["args"])),
                )
            )
        return out

    async def _block_time(self, number: int) -> float:
        if number not in self._block_times:
            if len(self._block_times) > 10_000:
                self._block_times.clear()
            block = await self.w3.eth.get_block(number)
            self._block_times[number] = float(block["timestamp"])
        return self._block_times[number]


def contract_sources(
    w3: AsyncWeb3[AsyncHTTPProvider],
    deployment: Deployment,
    watched: Sequence[tuple[str, Sequence[str] | None]] = WATCHED_CONTRACTS,
) -> list[EventSource]:
    """One source per watched contract that this deployment has."""
    return [
        ContractEventSource(w3, deployment, name, events) for name, events in watched if name in deployment.contracts
    ]


class ChainWatcher:
    """Polls the chain head and publishes new events from every source into a feed."""

    def __init__(
        self,
        w3: AsyncWeb3[AsyncHTTPProvider],
        sources: Sequence[EventSource],
        feed: EventFeed,
        *,
        start_block: int | None = None,
        backfill: int = 500,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.w3 = w3
        self.sources = list(sources)
        self.feed = feed
        self.start_block = start_block
        self.backfill = backfill
        self.interval = interval
        self.clock = clock
        self.next_block: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> int:
        """Fetch events from the blocks not yet seen; returns how many were published."""
        head = int(await self.w3.eth.block_number)
        if self.next_block is None:
            first = max(0, head - self.backfill)
            self.next_block = max(first, self.start_block or 0)
        if head < self.next_block - 1:
            # The chain went back (a test snapshot was reverted, or a reorg): follow it.
            self.next_block = head + 1
            return 0
        if head < self.next_block:
            return 0
        published = 0
        to_block = min(head, self.next_block + 2_000)
        for source in self.sources:
            for event in await source.fetch(self.next_block, to_block):
                self.feed.publish(event)
                published += 1
        self.next_block = to_block + 1
        return published

    async def run(self) -> None:
        """Poll forever; a failing node is logged and retried, never fatal."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node may be down or restarting; the feed just pauses
                log.warning("chain watcher: %s", exc)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Cancel the background task and close the RPC session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.w3.provider.disconnect()
