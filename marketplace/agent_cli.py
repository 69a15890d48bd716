"""`agora agent run`: one agent of any role on this machine, found by the others through the registry.

    agora agent run --role validator --name val-1 --registry http://10.0.0.5:8000 \\
        --rpc-url http://10.0.0.5:8545 --manifest deployment.json --public-url http://10.0.0.7:9001 --port 9001

The agent's key is made on first run and kept (mode 0600) in its data folder, with its store: run the same
name again and it comes back as the same agent, with what it knew. It publishes its card at start-up and
heartbeats so the registry keeps listing it; Ctrl-C (or SIGTERM) stops it cleanly. Its account needs gas
money and, for roles that pay or stake, tokens: the start-up line prints the account to fund.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer
import uvloop
from rich.console import Console

from agents.base import AgentDeps
from agents.process import load_factory
from agents.roles.base import parts_of
from agents.settings import AgentSettings, default_data_root
from marketplace.registry.client import RegistryError

ROLES = {
    "user": "agents.roles.user:build",
    "seller": "agents.roles.seller:build",
    "validator": "agents.roles.validator:build",
    "advertiser": "agents.roles.advertiser:build",
    "merchant": "agents.roles.merchant:build",
    "relay": "agents.roles.relay:build",
    "assistant": "agents.roles.assistant:build",
}
"""The roles `agora agent run` starts, by name → role factory."""

SEED_FILE = "seed"

console = Console()


def agent_seed(data_dir: Path) -> str:
    """The agent's key seed: read from its data folder, or made there on first run (readable by the owner only)."""
    path = data_dir / SEED_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    seed = secrets.token_hex(32)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(seed + "\n")
    return seed


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a VALUE that parses as JSON is taken as JSON (numbers, lists, objects), else as text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes KEY=VALUE, not {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


async def serve_agent(factory: str, settings: AgentSettings, options: dict[str, Any], heartbeat: float) -> None:
    """Build, start, publish the card, heartbeat; stop cleanly on SIGINT/SIGTERM."""
    agent = load_factory(factory)(settings, AgentDeps(), options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    try:
        parts = parts_of(agent)
        card = await parts.publish()
        registry = parts.settlement.require_registry()
        registry.start_heartbeats(heartbeat, card)
        console.print(
            f"{settings.name} ({card.role}) {agent.address}\n  endpoint {agent.endpoint}\n"
            f"  account  {agent.keys.eth_address}\nlisted in the registry; Ctrl-C stops it",
            highlight=False,
        )
        await stop.wait()
        await registry.stop_heartbeats()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await agent.stop()
    console.print(f"{settings.name} stopped")


def run_agent(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="The agent's name; its data folder and key are kept under it.")],
    registry: Annotated[str, typer.Option(help="Registry URL, e.g. http://127.0.0.1:8000.")],
    rpc_url: Annotated[str, typer.Option(help="Chain RPC URL.")],
    manifest: Annotated[Path, typer.Option(help="Deployment manifest (written by `agora chain up`).")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind (0: any free one).")] = 0,
    public_url: Annotated[
        str | None, typer.Option(help="URL peers reach this agent at, when not the bound address (NAT, proxy).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the agent keeps its key and store.")] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="Role option KEY=VALUE (JSON values accepted); repeat as needed.")
    ] = None,
    heartbeat: Annotated[float, typer.Option(min=1.0, help="Seconds between registry heartbeats.")] = 30.0,
) -> None:
    """Run one agent until Ctrl-C."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not manifest.exists():
        raise FileNotFoundError(f"no deployment manifest at {manifest} (run `agora chain up`, or pass --manifest)")
    folder = data_dir or default_data_root() / name
    settings = AgentSettings(
        name=name, seed=agent_seed(folder), host=host, port=port, data_dir=folder, public_url=public_url
    )
    options = {**parse_options(option or []), "rpc_url": rpc_url, "manifest": str(manifest), "registry_url": registry}
    try:
        uvloop.run(serve_agent(ROLES[role], settings, options, heartbeat))
    except (OSError, aiohttp.ClientError, RegistryError) as err:  # port taken, registry or chain unreachable
        raise ValueError(f"{name} could not start: {err}") from None
