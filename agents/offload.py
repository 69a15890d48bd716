"""Run CPU-heavy work (training, evaluation, re-execution) off an agent's event loop, in a bounded pool.

A torch fine-tune takes seconds of CPU; run on the event loop, it stalls every agent in the process (no
message is answered, no heartbeat sent, no deadline noticed). `await offload(fn, *args, **kwargs)` runs
`fn(*args, **kwargs)` elsewhere and returns its result, re-raising its exception as is.

Where the work runs (`kind`):

- ``"process"`` (default): a pool of worker processes started with multiprocessing's **spawn** method, never
  fork (a forked child inherits the parent's threads, locks and torch state mid-flight). Each worker applies
  `marketplace.ml.ensure_deterministic` at start-up (one torch thread, deterministic kernels), so a job gives
  the same bits there as in the caller. `fn` and its arguments must be picklable: `fn` a module-level
  function (or a method of a picklable object), arguments plain data, tensors or models. They are copied
  with plain pickle, never shared: the job sees a copy of the caller's model, as another host would, and the
  caller's tensors stay where they are. Spawned workers import the parent's main module, so a script using
  offload needs the usual ``if __name__ == "__main__":`` guard.
- ``"thread"``: a thread pool, for light work, work that releases the GIL, or objects that do not pickle.
- ``"inline"``: in the caller, on the event loop, blocking it: for debugging (breakpoints, plain tracebacks).

The environment variable ``AGORA_OFFLOAD=process|thread|inline`` sets the kind wherever no kind is passed
explicitly (the process-wide default included): ``AGORA_OFFLOAD=inline agora demo`` runs every offloaded
job in place.

Bounds: at most `max_workers` jobs run at once, and at most `max_pending` are handed to the pool (running or
queued there) per event loop; further callers wait their turn in `run`, holding only their own arguments,
so a flood of requests queues instead of piling pickled copies into memory. A slot is freed when the job
has really finished, also when its caller was cancelled (a job already running in a worker cannot be
stopped, and it still occupies that worker).

Starting a process worker costs seconds (interpreter, torch import): `await warm_up()` pays that up front.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast, get_args

__all__ = [
    "OFFLOAD_ENV",
    "OffloadKind",
    "Offloader",
    "configure_offload",
    "offload",
    "shutdown_offload",
    "warm_up",
]

OffloadKind = Literal["process", "thread", "inline"]
OFFLOAD_ENV: Final = "AGORA_OFFLOAD"
"""Environment variable naming the kind used where none is passed explicitly."""

_KINDS: Final[tuple[str, ...]] = get_args(OffloadKind)
_MAX_DEFAULT_PROCESSES: Final = 2  # each worker is a whole interpreter with torch loaded (~300 MB)
_MAX_DEFAULT_THREADS: Final = 4
_PENDING_PER_WORKER: Final = 2  # one running, one queued behind it: a worker never idles waiting for pickling
_WARM_UP_HOLD: Final = 0.05  # seconds a warm-up job keeps its worker busy so the next one goes to another worker

P = ParamSpec("P")
R = TypeVar("R")


def _kind_from_env() -> OffloadKind:
    value = os.environ.get(OFFLOAD_ENV, "process").strip().lower() or "process"
    if value not in _KINDS:
        raise ValueError(f"{OFFLOAD_ENV}={value!r} is not one of {', '.join(_KINDS)}")
    return cast(OffloadKind, value)


def _default_workers(kind: OffloadKind) -> int:
    cap = _MAX_DEFAULT_PROCESSES if kind == "process" else _MAX_DEFAULT_THREADS
    return max(1, min(os.cpu_count() or 1, cap))


def _init_process_worker() -> None:
    """Worker start-up: agora's determinism settings (one torch thread, deterministic kernels), applied once.

    Jobs apply them too; doing it here moves the cost (enabling deterministic kernels imports much of torch,
    ~2 s of CPU) from the first job into start-up, which warm_up() can pay ahead of time.
    """
    try:
        from marketplace.ml.determinism import ensure_deterministic
    except ImportError:  # no torch in this environment: nothing to pin
        return
    ensure_deterministic()


def _run_pickled(payload: bytes) -> bytes:
    """Worker side of a process job: unpickle the call, run it, pickle the result."""
    # The payload was pickled by this package in the parent process, never received from a peer.
    fn, args, kwargs = pickle.loads(payload)  # noqa: S301
    return pickle.dumps(fn(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL)


def _worker_pid() -> int:
    time.sleep(_WARM_UP_HOLD)
    return os.getpid()


def _release_soon(loop: asyncio.AbstractEventLoop, gate: asyncio.Semaphore, _: concurrent.futures.Future[Any]) -> None:
    # Runs in the pool's thread when the job ends; the semaphore belongs to the loop's thread. A closed loop
    # (RuntimeError) has nobody left waiting on its semaphore.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(gate.release)


class Offloader:
    """A bounded pool running picklable callables off the event loop: `await offloader.run(fn, *args)`."""

    def __init__(
        self, kind: OffloadKind | None = None, max_workers: int | None = None, max_pending: int | None = None
    ) -> None:
        resolved = _kind_from_env() if kind is None else kind
        if resolved not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {resolved!r}")
        workers = _default_workers(resolved) if max_workers is None else max_workers
        pending = _PENDING_PER_WORKER * workers if max_pending is None else max_pending
        if workers < 1 or pending < 1:
            raise ValueError(f"max_workers and max_pending must be at least 1, got {workers} and {pending}")
        self.kind: Final[OffloadKind] = resolved
        self.max_workers: Final = workers
        self.max_pending: Final = pending
        self._pool: Executor | None = None
        self._closed = False
        self._lock = threading.Lock()  # close() may come from another thread (atexit, a signal handler's loop)
        # One semaphore per event loop: an asyncio.Semaphore is bound to the loop it first waits on, and the
        # same Offloader may serve several loops over its life (one asyncio.run after another).
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Offloader(kind={self.kind!r}, max_workers={self.max_workers}, max_pending={self.max_pending}, {state})"

    @property
    def closed(self) -> bool:
        """Whether close() was called; a closed Offloader refuses new jobs."""
        return self._closed

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `fn(*args, **kwargs)` in the pool and return its result; its exception is re-raised as is.

        From a process worker the exception is a copy of the worker's, with the worker's traceback as its
        `__cause__`; a worker that dies mid-job raises BrokenProcessPool here. Arguments and the result are
        pickled on the event loop (about 2 ms each way for a demo-size model).
        """
        if self._closed:
            raise RuntimeError("this Offloader is closed")
        if self.kind == "inline":
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        gate = self._gate(loop)
        await gate.acquire()
        pool: Executor | None = None
        try:
            pool = self._executor()
            if self.kind == "process":
                payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
                future: concurrent.futures.Future[Any] = pool.submit(_run_pickled, payload)
            else:
                future = pool.submit(fn, *args, **kwargs)
        except BaseException as exc:
            gate.release()
            if pool is not None and isinstance(exc, BrokenExecutor):
                self._discard(pool)
            raise
        future.add_done_callback(functools.partial(_release_soon, loop, gate))
        try:
            result = await asyncio.wrap_future(future)
        except BrokenExecutor:
            # A worker died (killed, out of memory), which breaks the whole pool: later jobs get a fresh one.
            self._discard(pool)
            raise
        if self.kind == "process":
            # Pickled by our own worker (see _run_pickled).
            return cast(R, pickle.loads(result))  # noqa: S301
        return cast(R, result)

    async def warm_up(self) -> None:
        """Start every worker now (spawn + imports take seconds) instead of on the first jobs."""
        if self.kind != "process":
            return  # threads start in microseconds
        # Spawned workers start on demand, one per job submitted while none is idle, so a round of as many
        # jobs as can be in the pool at once starts them all; rounds repeat until each worker has answered,
        # that is, has finished its start-up.
        busy = min(self.max_workers, self.max_pending)
        seen: set[int] = set()
        while len(seen) < busy:
            seen.update(await asyncio.gather(*(self.run(_worker_pid) for _ in range(busy))))

    def close(self, *, wait: bool = True) -> None:
        """Refuse new jobs and stop the workers once the jobs already handed to them end (waiting, if `wait`)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)

    async def __aenter__(self) -> Offloader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Joining workers can take as long as their running jobs: not on the event loop.
        await asyncio.to_thread(self.close)

    def _gate(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.max_pending)
        return gate

    def _executor(self) -> Executor:
        with self._lock:
            if self._closed:
                raise RuntimeError("this Offloader is closed")
            if self._pool is None:
                if self.kind == "process":
                    self._pool = ProcessPoolExecutor(
                        self.max_workers,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=_init_process_worker,
                    )
                else:
                    self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="agora-offload")
            return self._pool

    def _discard(self, pool: Executor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)


# The one process-wide default behind offload(): created on first use, replaced by configure_offload(),
# dropped by shutdown_offload(). Keyed by pid so a forked child never reuses its parent's pool.
_default: tuple[int, Offloader] | None = None
_default_lock = threading.Lock()


def _default_offloader() -> Offloader:
    global _default
    with _default_lock:
        if _default is None or _default[0] != os.getpid() or _default[1].closed:
            _default = (os.getpid(), Offloader())
        return _default[1]


async def offload(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn(*args, **kwargs)` on the process-wide default Offloader (created on first use) and return its result."""
    return await _default_offloader().run(fn, *args, **kwargs)


def configure_offload(
    kind: OffloadKind | None = None, max_workers: int | None = None, max_pending: int | None = None
) -> Offloader:
    """Replace the process-wide default Offloader with one of these settings and return it.

    Jobs already handed to the previous default still finish; its workers exit after them. Explicit
    arguments win over the AGORA_OFFLOAD environment variable.
    """
    global _default
    replacement = Offloader(kind, max_workers, max_pending)
    with _default_lock:
        previous, _default = _default, (os.getpid(), replacement)
    if previous is not None and previous[0] == os.getpid():
        previous[1].close(wait=False)
    return replacement


def shutdown_offload() -> None:
    """Close the process-wide default Offloader, if any; the next offload() creates a fresh one."""
    global _default
    with _default_lock:
        previous, _default = _default, None
    if previous is not None and previous[0] == os.getpid():
        previous[1].close()


async def warm_up() -> None:
    """Start the default Offloader's workers ahead of the first job (see Offloader.warm_up)."""
    await _default_offloader().warm_up()
