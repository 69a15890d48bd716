"""`agora registry serve|ls`: run the marketplace registry, or list what a running one holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

DEFAULT_PORT = 8700
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

registry_app = typer.Typer(help="Run the marketplace registry (signed agent cards, search, resolver, dashboard).")
console = Console()


def _deployment(rpc_url: str, manifest: Path | None) -> Any:
    from marketplace.chain.manifest import Deployment, default_manifest_path
    from marketplace.chain.node import rpc_call

    if manifest is None:
        chain_id = int(str(rpc_call(rpc_url, "eth_chainId")), 16)
        manifest = default_manifest_path(chain_id)
    if not manifest.exists():
        raise typer.BadParameter(f"no deployment manifest at {manifest} (run `agora chain up` or pass --manifest)")
    return Deployment.load(manifest)


@registry_app.command("serve")
def serve(
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite file in .agora/).")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    rpc_url: Annotated[str | None, typer.Option(help="Chain RPC URL: feeds the dashboard's event list.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Deployment manifest (default: .agora/deployments/).")] = None,
    ttl: Annotated[float, typer.Option(help="Seconds an entry lives without a heartbeat.")] = 120.0,
) -> None:
    """Serve the registry API, its OpenAPI document (/openapi.json) and the dashboard (/)."""
    import logging

    from aiohttp import web

    from marketplace.registry.app import RegistrySettings, create_app

    deployment = _deployment(rpc_url, manifest) if rpc_url else None
    settings = RegistrySettings(database_url=db, ttl=ttl, rpc_url=rpc_url, deployment=deployment)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(f"agora registry on http://{host}:{port}/ (database: {db or 'SQLite in .agora/registry.db'})")
    web.run_app(create_app(settings), host=host, port=port, print=None, access_log=None)


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
            return await client.search(role=role, job_kind=job_kind, limit=limit)  # type: ignore[arg-type]

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
