"""Injected time: the real clock for live agents, a simulated one for fast deterministic runs and tests."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What agents use for time: `now()` in unix seconds and an awaitable `sleep`."""

    def now(self) -> float:
        """Current time in unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        """Current wall-clock time in unix seconds."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(seconds)


class SimulatedClock:
    """Time that moves only when told to (`advance`) or when someone sleeps: runs are fast and repeatable."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        """The simulated current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move simulated time forward."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance simulated time at once and yield to the event loop."""
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)
