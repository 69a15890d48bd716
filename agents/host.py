"""Many agents behind one HTTP server (as uAgents' Bureau does), in one process.

An agent costs a port, a listening socket and an aiohttp server of its own; a host of a thousand agents
would run out of the first and waste the rest. An `AgentHost` binds one server and routes by path:

    POST /agents/<address>/submit         → that agent's envelope checks and handlers
    HEAD /agents/<address>/submit         → readiness probe
    GET  /agents/<address>/blobs/<id>     → that agent's signed blob fetches (agents/blobs.py)

Each hosted agent still signs what it sends, checks every envelope it receives (signature, expiry, replay,
target, size) and keeps its own store and blobs; the host only forwards bytes. Agents on one host reach each
other in-process (the uAgents dispatcher), peers elsewhere over HTTP at the URL their card names:
`<host url>/agents/<address>/submit`.

    host = AgentHost("127.0.0.1", 0)
    await host.start()
    agent = build(host.settings_for(AgentSettings(name="user-0", seed=...)))
    await host.add(agent)          # starts it; `await host.remove(agent.address)` stops it
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import uvloop
from aiohttp import web

from agents.base import AgentDeps, AgoraAgent
from agents.mods import Limits, Rejected
from agents.process import (
    LOOPBACK_ONLY_ENV,
    READY,
    allow_loopback_only,
    load_factory,
    settings_from_json,
    settings_to_json,
    stop_child,
)
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from agents.transport import EnvelopeServer, submit
from agents.wallet import Wallet

PREFIX = "/agents/"


class HostError(RuntimeError):
    """A hosting mistake: an agent added twice, built without the host's settings, or a host not started."""


class AgentHost:
    """One HTTP server for many agents; `public_url` is how peers reach it (default: the bound loopback URL)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_url: str | None = None,
        max_body: int | None = None,
        advertise: str | None = None,
    ) -> None:
        self._host = host
        self._public_url = public_url.rstrip("/") if public_url else None
        self._advertise = advertise or host
        self._max_body = max_body or Limits().max_message_bytes
        self._agents: dict[str, AgoraAgent] = {}
        self._server = EnvelopeServer(host, port, _no_submit, self._max_body, routes={PREFIX: self._route})

    @property
    def url(self) -> str:
        """The base URL peers reach this host at: `public_url`, else the bound port at `advertise` (a wildcard bind
        such as 0.0.0.0 names no address a peer can reach: advertise the machine's own), else at the bound address."""
        return self._public_url or f"http://{self._advertise}:{self._server.port}"

    @property
    def agents(self) -> dict[str, AgoraAgent]:
        """The agents served, by address."""
        return dict(self._agents)

    async def start(self) -> None:
        """Bind the server (before `settings_for`, which needs the port)."""
        await self._server.start()

    async def stop(self) -> None:
        """Stop every agent, then the server."""
        for address in list(self._agents):
            await self.remove(address)
        await self._server.stop()

    def settings_for(self, settings: AgentSettings) -> AgentSettings:
        """The settings an agent served by this host is built with: no server of its own, this host's URL."""
        if not settings.seed:
            raise HostError(f"{settings.name}: a hosted agent needs a seed (its address names its path on the host)")
        address = Wallet.from_seed(settings.seed).agent_address
        return dataclasses.replace(settings, listen=False, host=self._host, public_url=f"{self.url}{PREFIX}{address}")

    async def add(self, agent: AgoraAgent) -> None:
        """Start serving an agent built with `settings_for` (this starts the agent)."""
        if agent.address in self._agents:
            raise HostError(f"{agent.name} ({agent.address[:16]}…) is already hosted here")
        if agent.settings.listen or agent.endpoint != f"{self.url}{PREFIX}{agent.address}/submit":
            raise HostError(f"{agent.name} was not built with this host's settings_for()")
        await agent.start()
        self._agents[agent.address] = agent

    async def remove(self, address: str) -> None:
        """Stop an agent and stop routing to it (requests for it get 404)."""
        agent = self._agents.pop(address, None)
        if agent is not None:
            await agent.stop()

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        address, _, rest = request.path.removeprefix(PREFIX).partition("/")
        agent = self._agents.get(address)
        if agent is None:
            return _json(404, "unknown_agent", "no agent with this address is hosted here")
        if rest == "submit":
            if request.method == "HEAD":
                return web.Response(headers={"x-uagents-status": "ready"})
            if request.method != "POST":
                return web.Response(status=405)
            return await submit(request, agent.receive_envelope, agent.settings.limits.max_message_bytes)
        if rest.startswith("blobs/"):
            return await agent.blobs.serve(request)
        return _json(404, "not_found", f"POST {PREFIX}<address>/submit or GET {PREFIX}<address>/blobs/<id>")


async def _no_submit(_body: bytes, _sync: bool) -> bytes | None:
    raise Rejected("not_found", f"this is an agent host: POST {PREFIX}<address>/submit", 404)


def _json(status: int, code: str, detail: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"code": code, "detail": detail}).encode())


# --- a host in its own process ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HostedAgent:
    """One agent a host process runs: its role factory (`module:function`), settings and options."""

    factory: str
    settings: AgentSettings
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class HostPlan:
    """What a host process serves: where it binds, the URL peers reach it at, its agents and the peers it knows."""

    agents: list[HostedAgent]
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    peers: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def pinned(self, url: str) -> HostPlan:
        """This plan bound to the port of `url`, where it ran before (a restarted host keeps its agents' endpoints)."""
        port = urlsplit(url).port
        if port is None:
            raise HostError(f"{url} names no port")
        return dataclasses.replace(self, port=port)

    def to_json(self) -> str:
        """Serialised for the child (it holds seeds: passed in the environment, never on the command line)."""
        agents = [{"factory": a.factory, "settings": settings_to_json(a.settings), "options": a.options}
                  for a in self.agents]  # fmt: skip
        return json.dumps({**dataclasses.asdict(self), "agents": agents})

    @classmethod
    def from_json(cls, text: str) -> HostPlan:
        """Inverse of to_json."""
        data = json.loads(text)
        agents = [
            HostedAgent(a["factory"], settings_from_json(a["settings"]), a["options"]) for a in data.pop("agents")
        ]
        return cls(agents=agents, **data)


async def start_plan(plan: HostPlan, advertise: str | None = None) -> tuple[AgentHost, dict[str, str]]:
    """Bind the plan's host in this event loop, then build and start each of its agents; the host and each agent's
    address by name. If an agent fails to start, the host and those already started are stopped."""
    server = AgentHost(plan.host, plan.port, public_url=plan.public_url, advertise=advertise)
    await server.start()
    resolver = StaticResolver(plan.peers)
    names: dict[str, str] = {}
    try:
        for hosted in plan.agents:
            agent = load_factory(hosted.factory)(
                server.settings_for(hosted.settings), AgentDeps(resolver=resolver), hosted.options
            )
            await server.add(agent)
            names[hosted.settings.name] = agent.address
    except BaseException:
        await server.stop()
        raise
    return server, names


def plan_info(server: AgentHost, names: dict[str, str]) -> dict[str, Any]:
    """What a started host reports to its launcher: its URL and each agent's name, address and endpoint."""
    listed = [{"name": n, "address": a, "endpoint": server.agents[a].endpoint} for n, a in names.items()]
    return {"url": server.url, "agents": listed}


async def serve_plan(plan: HostPlan, commands: asyncio.StreamReader | None = None) -> None:
    """Child side: bind, build and start every agent, print one READY line, then serve until SIGTERM/SIGINT.

    `commands` (the parent's pipe) carries one JSON object per line: `{"stop": name}` stops that agent (fault
    injection) and is answered with a STOPPED line."""
    server, names = await start_plan(plan)
    try:
        print(READY + json.dumps(plan_info(server, names)), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = loop.create_task(_obey(commands, server, names, stop)) if commands is not None else None
        await stop.wait()
        if watcher is not None:
            watcher.cancel()
    finally:
        await server.stop()


async def _obey(commands: asyncio.StreamReader, server: AgentHost, names: dict[str, str], stop: asyncio.Event) -> None:
    while line := await commands.readline():
        try:
            name = str(json.loads(line)["stop"])
        except (ValueError, KeyError, TypeError):
            continue  # only the parent writes here; a line it did not mean is ignored
        if name in names:
            await server.remove(names[name])
        print(STOPPED + json.dumps({"name": name}), flush=True)
    stop.set()  # the parent went away: stop rather than serve orphaned


class HostHandle(Protocol):
    """What a runner holds of a started host, wherever it runs (a child process, a Ray actor)."""

    plan: HostPlan
    url: str
    agents: dict[str, tuple[str, str]]
    """name → (agent address, endpoint)."""

    async def stop_agent(self, name: str, wait: float = 30.0) -> None:
        """Stop one agent of this host (the others keep running)."""
        ...

    async def stop(self, wait: float = 15.0) -> int:
        """Stop every agent and the host; an exit code (0: clean)."""
        ...

    async def kill(self) -> None:
        """End the host abruptly, as a crash would (nothing stopped cleanly)."""
        ...


HostLauncher = Callable[[Sequence[HostPlan]], Awaitable[Sequence[HostHandle]]]
"""Starts hosts for plans and returns their handles once every agent accepts messages."""


class HostProcess:
    """Parent-side handle on a host process: its URL, its agents' addresses and endpoints by name."""

    def __init__(
        self, process: asyncio.subprocess.Process, plan: HostPlan, info: dict[str, Any], seen: list[str]
    ) -> None:
        self.process = process
        self.plan = plan
        self.url: str = info["url"]
        self.agents: dict[str, tuple[str, str]] = {a["name"]: (a["address"], a["endpoint"]) for a in info["agents"]}
        self.output: deque[str] = deque(seen, maxlen=200)
        self._stopped: dict[str, asyncio.Event] = {}
        self._drain = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            if text.startswith(STOPPED):
                name = json.loads(text[len(STOPPED) :]).get("name")
                self._stopped.setdefault(str(name), asyncio.Event()).set()
            else:
                self.output.append(text)

    async def stop_agent(self, name: str, wait: float = 30.0) -> None:
        """Stop one agent of this host (the others keep running)."""
        assert self.process.stdin is not None
        done = self._stopped.setdefault(name, asyncio.Event())
        self.process.stdin.write(json.dumps({"stop": name}).encode() + b"\n")
        await self.process.stdin.drain()
        await asyncio.wait_for(done.wait(), wait)

    async def stop(self, wait: float = 15.0) -> int:
        """SIGTERM the host and wait (SIGKILL after `wait` s); returns the exit code."""
        return await stop_child(self.process, self._drain, wait)

    async def kill(self) -> None:
        """SIGKILL the host (a crash: nothing is stopped cleanly)."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain


async def spawn_host(plan: HostPlan, ready_within: float = 300.0) -> HostProcess:
    """Start a host process for `plan` and return once every agent in it accepts messages."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents.host",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=MAX_PLAN_BYTES,  # the READY line lists every agent: a host of a few hundred outgrows 64 KiB
    )
    assert process.stdout is not None
    assert process.stdin is not None
    # The plan (seeds included) goes down the pipe as the first line: never on the command line, and not in
    # the environment, whose strings are capped at 128 KiB (a plan of a few hundred agents is larger).
    process.stdin.write(plan.to_json().encode() + b"\n")
    seen: list[str] = []
    try:
        async with asyncio.timeout(ready_within):
            while True:
                line = (await process.stdout.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("agent host exited before it was ready:\n" + "".join(seen[-30:]))
                if line.startswith(READY):
                    return HostProcess(process, plan, json.loads(line[len(READY) :]), [s.rstrip() for s in seen])
                seen.append(line)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


STOPPED = "AGORA-STOPPED "
MAX_PLAN_BYTES = 256 * 2**20
"""The longest plan line a host process reads."""


async def _main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=MAX_PLAN_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    plan = HostPlan.from_json((await commands.readline()).decode())
    await serve_plan(plan, commands)


def main() -> None:
    """Entry point of `python -m agents.host` (the plan comes as the first line on stdin, commands after it)."""
    if os.environ.get(LOOPBACK_ONLY_ENV) == "1":
        allow_loopback_only()
    uvloop.run(_main())


if __name__ == "__main__":
    main()
