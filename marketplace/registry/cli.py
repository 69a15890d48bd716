"""`agora registry serve|ls`: run the marketplace registry, or list what a running one holds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from marketplace.chain.manifest import Deployment

DEFAULT_PORT = 8700
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

registry_app = typer.Typer(help="Run the marketplace registry (signed agent cards, search, resolver, dashboard).")
console = Console()
err_console = Console(stderr=True)

WITHOUT_CHAIN = "serving without chain events or on-chain reputation"
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
"""The async driver the registry runs each database backend on, by URL backend name."""


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def database_url(db: str | None) -> tuple[str, str]:
    """The async SQLAlchemy URL for --db (sync URLs get their async driver), and how to name it to the user."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from marketplace.registry.storage import default_database_url

    try:
        url = make_url(db or default_database_url())
    except ArgumentError:
        raise ValueError(f"--db {db!r} is not a database URL (use sqlite:///PATH or postgresql://...)") from None
    backend = url.drivername.split("+", 1)[0]
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"--db: unsupported database {backend!r} (use sqlite:///PATH or postgresql://...)")
    url = url.set(drivername=ASYNC_DRIVERS[backend])
    if backend != "sqlite":
        return url.render_as_string(hide_password=False), url.render_as_string(hide_password=True)
    if not url.database or url.database == ":memory:":
        return url.render_as_string(hide_password=False), "SQLite in memory"
    return url.render_as_string(hide_password=False), f"SQLite at {Path(url.database).resolve()}"


@dataclass(frozen=True)
class ChainSource:
    """The chain a registry reads (for its event feed and reputation), and a line saying where it came from."""

    rpc_url: str | None
    deployment: Deployment | None
    note: str


def chain_source(rpc_url: str | None, manifest: Path | None) -> ChainSource:
    """The chain named by --rpc-url/--manifest, else the one `agora chain up` runs (its records under AGORA_HOME)."""
    from marketplace.chain.manifest import Deployment, default_manifest_path
    from marketplace.chain.node import rpc_call, running_daemon

    if rpc_url is not None:
        if manifest is None:
            manifest = default_manifest_path(int(str(rpc_call(rpc_url, "eth_chainId")), 16))
        if not manifest.exists():
            raise FileNotFoundError(f"no deployment manifest at {manifest} (run `agora chain up` or pass --manifest)")
        return ChainSource(rpc_url, Deployment.load(manifest), f"chain: {rpc_url} (manifest {manifest})")
    daemon = running_daemon()
    if daemon is None:
        if manifest is not None:
            deployment = Deployment.load(manifest)
            return ChainSource(deployment.rpc_url, deployment, f"chain: {deployment.rpc_url} (manifest {manifest})")
        return ChainSource(None, None, f"no local chain is running (start one with `agora chain up`): {WITHOUT_CHAIN}")
    manifest = manifest or default_manifest_path(daemon.chain_id)
    if not manifest.exists():
        return ChainSource(
            None, None, f"the local chain at {daemon.rpc_url} has no manifest {manifest}: {WITHOUT_CHAIN}"
        )
    note = f"chain: the local chain at {daemon.rpc_url} (manifest {manifest})"
    return ChainSource(daemon.rpc_url, Deployment.load(manifest), note)


@registry_app.command("serve")
def serve(
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL: sqlite:///PATH or postgresql://... (default: registry.db under AGORA_HOME, .agora/)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    rpc_url: Annotated[
        str | None, typer.Option(help="Chain RPC URL for the dashboard feed (default: the `agora chain up` chain).")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Deployment manifest (default: deployments/ under AGORA_HOME, .agora/).")
    ] = None,
    ttl: Annotated[float, typer.Option(help="Seconds an entry lives without a heartbeat.")] = 120.0,
    registry_id: Annotated[
        str | None,
        typer.Option(
            help="Id signed writes must name, e.g. the public URL (default: a random id kept in the database)."
        ),
    ] = None,
) -> None:
    """Serve the registry API, its OpenAPI document (/openapi.json) and the dashboard (/)."""
    import logging

    from aiohttp import web

    from marketplace.chain.node import NodeError
    from marketplace.registry.app import RegistrySettings, create_app

    try:
        url, shown = database_url(db)
        chain = chain_source(rpc_url, manifest)
    except (ValueError, NodeError, OSError) as exc:
        _fail(str(exc))
    settings = RegistrySettings(
        database_url=url, ttl=ttl, rpc_url=chain.rpc_url, deployment=chain.deployment, registry_id=registry_id
    )
    try:
        app = create_app(settings)
    except ValueError as exc:  # a --registry-id that is not a slug or URL
        _fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(chain.note, highlight=False, soft_wrap=True)
    console.print(f"agora registry on http://{host}:{port}/ (database: {shown})", highlight=False, soft_wrap=True)
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None)
    except OSError as exc:
        # The port is taken or the database server cannot be reached: say which, without a traceback.
        _fail(f"the registry could not start on {host}:{port}: {exc}")


@registry_app.command("ls")
def ls(
    registry: Annotated[str, typer.Option(help="Registry base URL.")] = DEFAULT_URL,
    role: Annotated[str | None, typer.Option(help="Only this role (user, advertiser, seller, validator).")] = None,
    job_kind: Annotated[str | None, typer.Option(help="Only agents offering this job kind.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
) -> None:
    """List live agents, best-ranked first."""
    import aiohttp

    from marketplace.registry.client import RegistryClient, RegistryError
    from marketplace.registry.events import format_amount
    from marketplace.registry.models import SearchPage

    async def fetch() -> SearchPage:
        async with RegistryClient(registry) as client:
            return await client.search(role=role, job_kind=job_kind, limit=limit)

    try:
        page = asyncio.run(fetch())
    except (aiohttp.ClientError, OSError) as exc:
        console.print(f"[bold red]error:[/] cannot reach the registry at {registry}: {exc}")
        raise typer.Exit(1) from None
    except RegistryError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"agents at {registry}")
    for column in ("address", "name", "role", "offerings", "best price (AGT)", "reputation"):
        table.add_column(column)
    for entry in page.results:
        card = entry.card
        offers = ", ".join(f"{o.model_id}/{o.job_kind}@{format_amount(o.price_per_unit)}" for o in card.offerings)
        price = "—" if entry.best_price is None else format_amount(entry.best_price)
        rep = f"{entry.reputation.score} ({entry.reputation.count} receipts)"
        table.add_row(card.address, card.name, card.role, offers, price, rep)
    console.print(table)
    if not page.results:
        console.print("no live agents match")
