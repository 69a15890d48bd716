"""Agents in separate processes: a child entry point (`python -m agents.process`) and a parent-side handle.

The child builds its agent with a factory `fn(settings, deps, options) -> AgoraAgent` named as
`module:function`, starts it, prints one `AGORA-READY {"address", "endpoint"}` line and serves until
SIGTERM/SIGINT. Peers are given as {address: [endpoint]} and become the child's StaticResolver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import ipaddress
import json
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import uvloop

from agents.base import AgentDeps, AgoraAgent
from agents.blobs import BlobLimits
from agents.mods import Limits
from agents.resolver import StaticResolver
from agents.settings import AgentSettings

READY = "AGORA-READY "
Factory = Callable[[AgentSettings, AgentDeps, dict[str, Any]], AgoraAgent]


def settings_to_json(settings: AgentSettings) -> str:
    """Serialise settings for a child process (they include the seed: pass them privately, never log them)."""
    data = dataclasses.asdict(settings)
    data["data_dir"] = str(settings.data_dir) if settings.data_dir is not None else None
    limits = data["limits"]
    if limits["allowed_senders"] is not None:
        limits["allowed_senders"] = sorted(limits["allowed_senders"])
    return json.dumps(data)


def settings_from_json(text: str) -> AgentSettings:
    """Inverse of settings_to_json."""
    data = json.loads(text)
    limits = data.pop("limits")
    if limits.get("allowed_senders") is not None:
        limits["allowed_senders"] = frozenset(limits["allowed_senders"])
    data_dir = data.pop("data_dir")
    blob_limits = BlobLimits(**data.pop("blob_limits"))
    return AgentSettings(
        **data, data_dir=Path(data_dir) if data_dir else None, limits=Limits(**limits), blob_limits=blob_limits
    )


def load_factory(path: str) -> Factory:
    """Import `module:function`."""
    module_name, _, attr = path.partition(":")
    factory: Factory = getattr(importlib.import_module(module_name), attr)
    return factory


async def serve(factory: str, settings: AgentSettings, peers: Mapping[str, list[str]], options: dict[str, Any]) -> None:
    """Child side: build, start, announce readiness, serve until SIGTERM/SIGINT, stop cleanly."""
    agent = load_factory(factory)(settings, AgentDeps(resolver=StaticResolver(peers)), options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    print(READY + json.dumps({"address": agent.address, "endpoint": agent.endpoint}), flush=True)
    try:
        await stop.wait()
    finally:
        await agent.stop()


class AgentProcess:
    """Parent-side handle on an agent running in a child process."""

    def __init__(self, process: asyncio.subprocess.Process, address: str, endpoint: str) -> None:
        self.process = process
        self.address = address
        self.endpoint = endpoint
        self.output: deque[str] = deque(maxlen=200)
        self._drain = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode(errors="replace").rstrip())

    async def stop(self, wait: float = 10.0) -> int:
        """SIGTERM the child and wait for it (SIGKILL after `wait` seconds); returns the exit code."""
        return await stop_child(self.process, self._drain, wait)


async def stop_child(process: asyncio.subprocess.Process, drain: asyncio.Task[None], wait: float) -> int:
    """SIGTERM a child and wait for it (SIGKILL after `wait` s), then let its output reader finish; the exit code."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), wait)
        except TimeoutError:
            process.kill()
            await process.wait()
    with contextlib.suppress(asyncio.CancelledError):
        await drain
    return int(process.returncode or 0)


async def spawn_agent(
    factory: str,
    settings: AgentSettings,
    peers: Mapping[str, list[str]] | None = None,
    options: dict[str, Any] | None = None,
    ready_within: float = 30.0,
) -> AgentProcess:
    """Start `factory` in a new Python process and return once its agent accepts messages."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents.process",
        "--factory",
        factory,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "AGORA_PROCESS_ARGS": json.dumps([settings_to_json(settings), peers or {}, options or {}])},
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), ready_within)).decode(errors="replace")
            if not line:
                raise RuntimeError("agent process exited before it was ready:\n" + "".join(seen[-30:]))
            if line.startswith(READY):
                info = json.loads(line[len(READY) :])
                child = AgentProcess(process, info["address"], info["endpoint"])
                child.output.extend(text.rstrip() for text in seen)
                return child
            seen.append(line)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


LOOPBACK_ONLY_ENV = "AGORA_LOOPBACK_ONLY"
"""Set to 1 (tests do) and child agents refuse every outbound connection except loopback, like the test guard."""


def allow_loopback_only() -> None:
    """Refuse every outbound TCP connection of this process except to loopback (tests' child processes)."""
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise ConnectionRefusedError(f"{LOOPBACK_ONLY_ENV}: outbound connection to {host} refused")
        real_connect(sock, address)

    socket.socket.connect = guarded  # type: ignore[method-assign,assignment]


def main() -> None:
    """Entry point of `python -m agents.process --factory module:function` (arguments come in AGORA_PROCESS_ARGS)."""
    if os.environ.get(LOOPBACK_ONLY_ENV) == "1":
        allow_loopback_only()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--factory", required=True)
    args = parser.parse_args()
    # Settings (with the seed) travel in the environment rather than argv, which `ps` shows to everyone.
    settings_json, peers, options = json.loads(os.environ.pop("AGORA_PROCESS_ARGS"))
    # uvloop's libuv event loop roughly halves the per-message cost of the asyncio machinery.
    uvloop.run(serve(args.factory, settings_from_json(settings_json), peers, options))


if __name__ == "__main__":
    main()
