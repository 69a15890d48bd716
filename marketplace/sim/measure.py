"""What a run costs: resident memory of the runner and its agent hosts, and what each phase pushed through.

`MemorySampler` follows this process and its descendants (agent hosts, agent processes) in /proc, anvil apart;
`transactions_in` counts the transactions the chain included in a range of blocks (one batched JSON-RPC request).
Hosts placed elsewhere (a Ray cluster) are not this process's descendants: their memory is theirs to report.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict

PAGE = os.sysconf("SC_PAGE_SIZE")


class PhaseThroughput(BaseModel):
    """What one phase of a run moved, and how fast (rates over the phase's wall time)."""

    model_config = ConfigDict(extra="forbid")

    phase: str
    seconds: float
    messages: int
    """Messages agents took in: requests their handlers ran on, and replies to their own requests (the runner's
    control commands not counted)."""
    paid_calls: int
    transactions: int
    """Transactions the chain included while the phase ran (every agent's, and the runner's)."""

    @property
    def messages_per_second(self) -> float:
        """Messages taken in per second of the phase."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def calls_per_second(self) -> float:
        """Paid inference calls per second of the phase."""
        return self.paid_calls / self.seconds if self.seconds > 0 else 0.0

    @property
    def transactions_per_second(self) -> float:
        """Transactions included per second of the phase."""
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


class MemoryFigure(BaseModel):
    """Peak resident memory over a run: agora's processes (runner, hosts, agent processes) and anvil apart."""

    model_config = ConfigDict(extra="forbid")

    peak_bytes: int
    anvil_bytes: int
    agents: int

    @property
    def per_agent_bytes(self) -> float:
        """Peak resident memory of agora's processes divided by the agents they ran."""
        return self.peak_bytes / self.agents if self.agents else 0.0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    parent = int(file.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as file:
            return int(file.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _is_anvil(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as file:
            return file.read().strip() == "anvil"
    except OSError:
        return False


def resident(root: int | None = None) -> tuple[int, int]:
    """Resident bytes of `root` (default: this process) and its descendants: (agora's, anvil's)."""
    tree, agora, anvil = _children(), 0, 0
    pending = [root or os.getpid()]
    while pending:
        pid = pending.pop()
        pending.extend(tree.get(pid, []))
        if _is_anvil(pid):
            anvil += _rss(pid)
        else:
            agora += _rss(pid)
    return agora, anvil


class MemorySampler:
    """Peak resident memory of this process and its descendants, sampled every `period` s in a thread.

    Anvil runs as a descendant when the run starts it: it is counted apart (`peak_anvil`)."""

    def __init__(self, period: float = 0.5) -> None:
        self.period = period
        self.peak_agora = 0
        self.peak_anvil = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        """Take one sample now."""
        agora, anvil = resident()
        self.peak_agora, self.peak_anvil = max(self.peak_agora, agora), max(self.peak_anvil, anvil)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()


async def block_number(rpc_url: str) -> int:
    """The chain's latest block number."""
    answer = await _rpc(rpc_url, {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})
    return int(answer["result"], 16)


async def transactions_in(rpc_url: str, first: int, last: int) -> int:
    """Transactions included in blocks first..last (inclusive), asked in one batched JSON-RPC request."""
    if last < first:
        return 0
    batch = [
        {"jsonrpc": "2.0", "id": n, "method": "eth_getBlockTransactionCountByNumber", "params": [hex(n)]}
        for n in range(first, last + 1)
    ]
    answers = await _rpc(rpc_url, batch)
    return sum(int(answer["result"], 16) for answer in answers if answer.get("result"))


async def _rpc(rpc_url: str, body: object) -> Any:
    async with aiohttp.ClientSession() as session, session.post(rpc_url, json=body) as response:
        response.raise_for_status()
        return await response.json()
