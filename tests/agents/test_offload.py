"""offload(): results equal the in-place call, errors keep their type, the pool is bounded, the loop keeps ticking."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Awaitable, Iterator
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch

from agents.offload import OFFLOAD_ENV, Offloader, configure_offload, offload, shutdown_offload
from marketplace.ml import (
    AgoraModel,
    InferenceRunner,
    InteractionDataset,
    RecommenderSpec,
    TrainingError,
    artifact_hash,
    build_model,
    evaluate,
    fine_tune,
    make_interactions,
    split,
)

SPEC = RecommenderSpec(num_users=32, num_items=64, embedding_dim=8, hidden_dim=16)
TICK = 0.01


# Jobs for process workers must be importable by name: they live at module level.
def spin(seconds: float) -> int:
    """Hold the CPU (and the GIL) for `seconds`; return how many loop iterations that took."""
    deadline = time.perf_counter() + seconds
    turns = 0
    while time.perf_counter() < deadline:
        turns += 1
    return turns


def where() -> tuple[int, int]:
    """The process and thread a job ran in."""
    return os.getpid(), threading.get_ident()


def pid_after(seconds: float) -> int:
    """Sleep `seconds`, then return the worker's process id."""
    time.sleep(seconds)
    return os.getpid()


def die() -> None:
    """A job whose worker dies under it (as when the kernel kills it for memory)."""
    os._exit(1)


def fail_with_key_error(key: str) -> None:
    """A job that raises KeyError(key)."""
    raise KeyError(key)


class Overlap:
    """Counts how many jobs run at the same moment (thread jobs share this object)."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def job(self, seconds: float) -> None:
        """Take part in the count for `seconds`."""
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(seconds)
        with self._lock:
            self.running -= 1


@pytest.fixture(scope="module")
def processes() -> Iterator[Offloader]:
    """One process worker for the whole module: spawning it (and importing torch there) costs seconds."""
    pool = Offloader("process", max_workers=1)
    yield pool
    pool.close()


@pytest.fixture(autouse=True)
def _fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without AGORA_OFFLOAD and without a default Offloader, and leaves none behind."""
    monkeypatch.delenv(OFFLOAD_ENV, raising=False)
    shutdown_offload()
    yield
    shutdown_offload()


def small_job() -> tuple[AgoraModel, InteractionDataset, InteractionDataset]:
    """A small recommender and its train and held-out interactions."""
    data = make_interactions(SPEC, 600, seed=3)
    train, heldout = split(data, 0.25, seed=3)
    return build_model(SPEC, seed=3), train, heldout


async def test_run_fineTuneInWorkerBitIdenticalToInline(processes: Offloader) -> None:
    model, train, _ = small_job()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    remote, remote_metrics = await processes.run(fine_tune, model, train, epochs=2, lr=0.01, seed=7)
    local, local_metrics = fine_tune(model, train, epochs=2, lr=0.01, seed=7)
    assert remote_metrics == local_metrics
    assert artifact_hash(remote) == artifact_hash(local)
    assert all(torch.equal(remote.state_dict()[k], v) for k, v in local.state_dict().items())
    # The job got a copy: the caller's weights are untouched and were not moved into shared memory.
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not any(p.untyped_storage().is_shared() for p in model.parameters())


async def test_run_evaluateAndInferenceInWorkerEqualInline(processes: Offloader) -> None:
    model, train, heldout = small_job()
    tuned, _ = fine_tune(model, train, epochs=1, lr=0.01, seed=1)
    assert await processes.run(evaluate, tuned, heldout) == evaluate(tuned, heldout)
    runner = InferenceRunner(tuned)
    inputs = {"user_ids": [0, 5, 31], "item_ids": [63, 1, 2]}
    remote = await processes.run(runner.run, inputs)
    assert remote == runner.run(inputs)


async def test_run_workerErrorReraisedWithItsType(processes: Offloader) -> None:
    model, train, _ = small_job()
    with pytest.raises(TrainingError, match="epochs must be in"):
        await processes.run(fine_tune, model, train, epochs=0, lr=0.01, seed=1)
    with pytest.raises(KeyError, match="missing-key"):
        await processes.run(fail_with_key_error, "missing-key")
    async with Offloader("thread") as threads:
        with pytest.raises(KeyError, match="missing-key"):
            await threads.run(fail_with_key_error, "missing-key")


async def test_run_unpicklableJobFailsInCallerAndFreesItsSlot() -> None:
    async with Offloader("process", max_workers=1, max_pending=1) as pool:
        for _ in range(3):
            with pytest.raises((pickle.PicklingError, AttributeError)):
                await pool.run(lambda: 1)
        # A leaked slot would leave this waiting for ever (one slot in all); the pool was never started.
        with pytest.raises((pickle.PicklingError, AttributeError)):
            await asyncio.wait_for(pool.run(lambda: 2), timeout=5)


async def test_run_boundsJobsInFlightToMaxPending() -> None:
    overlap = Overlap()
    # Four threads could run four jobs at once; max_pending=2 must keep it to two.
    async with Offloader("thread", max_workers=4, max_pending=2) as threads:
        await asyncio.gather(*(threads.run(overlap.job, 0.05) for _ in range(8)))
    assert overlap.most == 2
    assert overlap.running == 0


async def test_run_cancelledCallerKeepsSlotUntilJobEnds() -> None:
    release, second_ran = threading.Event(), threading.Event()
    async with Offloader("thread", max_workers=2, max_pending=1) as threads:
        first = asyncio.create_task(threads.run(release.wait, 10))
        await asyncio.sleep(0.05)
        first.cancel()
        second = asyncio.create_task(threads.run(second_ran.set))
        await asyncio.sleep(0.2)
        assert not second_ran.is_set()  # the cancelled caller's job still runs and still holds the one slot
        release.set()
        await asyncio.wait_for(second, timeout=5)
        assert second_ran.is_set()
        with pytest.raises(asyncio.CancelledError):
            await first


async def test_run_deadWorkerFailsItsJobAndLaterJobsGetFreshPool(processes: Offloader) -> None:
    dead = await processes.run(os.getpid)
    with pytest.raises(BrokenProcessPool):
        await processes.run(die)
    assert await processes.run(os.getpid) not in (dead, os.getpid())


async def max_lag_during(work: Awaitable[object]) -> tuple[float, int]:
    """Run a heartbeat every TICK seconds while `work` runs; return its worst lateness and how often it beat."""
    lags: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - started - TICK)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(3 * TICK)
    lags.clear()
    await work
    done.set()
    await beat
    return max(lags), len(lags)


async def test_run_eventLoopKeepsTickingWhileWorkerComputes(processes: Offloader) -> None:
    await processes.warm_up()  # spawn + imports are start-up, not what is measured
    offloaded_lag, offloaded_beats = await max_lag_during(processes.run(spin, 1.0))
    inline_lag, _ = await max_lag_during(Offloader("inline").run(spin, 1.0))
    assert inline_lag > 0.8  # the same work on the loop stalls it for the whole second
    assert offloaded_lag < 0.2
    assert offloaded_beats > 30  # ~100 on an idle machine


async def test_warmUp_startsEveryWorkerBeforeTheFirstJob() -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    async with Offloader("process", max_workers=2) as pool:
        assert {child.pid for child in multiprocessing.active_children()} == before  # started lazily
        await pool.warm_up()
        started = {child.pid for child in multiprocessing.active_children()} - before
        assert len(started) == 2
        # A cold worker needs seconds (interpreter, torch, deterministic kernels); warm ones answer at once,
        # both at the same time.
        clock = time.perf_counter()
        pids = await asyncio.gather(pool.run(pid_after, 0.2), pool.run(pid_after, 0.2))
        assert time.perf_counter() - clock < 1.5
        assert set(pids) == started


async def test_offload_inlineFromEnvironmentRunsInCaller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLOAD_ENV, "inline")
    assert await offload(where) == (os.getpid(), threading.get_ident())


async def test_offload_threadFromEnvironmentRunsInAnotherThread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLOAD_ENV, "thread")
    pid, thread = await offload(where)
    assert pid == os.getpid()
    assert thread != threading.get_ident()


async def test_offload_unknownKindInEnvironmentRefused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLOAD_ENV, "fork")
    with pytest.raises(ValueError, match="AGORA_OFFLOAD"):
        await offload(where)


def test_configureOffload_defaultIsProcessPoolCappedAtTwo() -> None:
    default = configure_offload()
    assert default.kind == "process"
    assert default.max_workers == min(os.cpu_count() or 1, 2)
    assert default.max_pending == 2 * default.max_workers


async def test_configureOffload_explicitKindBeatsEnvironment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLOAD_ENV, "inline")
    configure_offload("thread", max_workers=1)
    assert (await offload(where))[1] != threading.get_ident()


async def test_shutdownOffload_nextOffloadGetsFreshDefault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLOAD_ENV, "thread")
    first = configure_offload("thread")
    shutdown_offload()
    assert first.closed
    with pytest.raises(RuntimeError, match="closed"):
        await first.run(where)
    pid, _ = await offload(where)  # the closed one would refuse (RuntimeError)
    assert pid == os.getpid()
