"""The `agora` command: run a local chain, deploy the contracts, and run economy demos."""

from __future__ import annotations

import contextlib
import functools
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from marketplace.agent_cli import run_agent
from marketplace.chain.deploy import LOCAL_NETWORK, DeployError, DeploySettings, deploy
from marketplace.chain.manifest import Deployment, default_manifest_path
from marketplace.chain.node import (
    LOCAL_CHAIN_ID,
    NodeError,
    preferred_chain_port,
    rpc_call,
    running_daemon,
    start_daemon,
    stop_daemon,
)
from marketplace.paths import MissingToolError, project_root
from marketplace.registry.cli import registry_app

app = typer.Typer(help="agora: autonomous agent economies on a real EVM.", no_args_is_help=True)
chain_app = typer.Typer(help="Run a local anvil chain with agora's contracts, or deploy to another network.")
app.add_typer(chain_app, name="chain")
app.add_typer(registry_app, name="registry")
agent_app = typer.Typer(help="Run agents on this machine; they find each other through the registry.")
app.add_typer(agent_app, name="agent")

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

USER_ERRORS = (MissingToolError, NodeError, DeployError, FileNotFoundError, FileExistsError, ValueError)


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report expected failures as one readable line and exit 1 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


agent_app.command("run")(friendly_errors(run_agent))


def agora_version() -> str:
    """The installed package's version, else the checkout's pyproject.toml version."""
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("agora")
    # Run from a checkout that was never pip-installed (e.g. `python -m marketplace.cli`).
    try:
        with (project_root() / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        console.print(f"agora {agora_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the agora version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """agora: autonomous agent economies on a real EVM."""


def _print_deployment(deployment: Deployment, manifest: Path) -> None:
    table = Table(title=f"agora on chain {deployment.chain_id} ({deployment.network})")
    table.add_column("contract")
    table.add_column("address")
    table.add_column("block", justify="right")
    for name, record in deployment.contracts.items():
        table.add_row(name, record.address, str(record.block))
    console.print(table)
    console.print(f"RPC      {deployment.rpc_url}")
    console.print(f"manifest {manifest}")


@chain_app.command("up")
@friendly_errors
def chain_up(
    port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Local RPC port, exactly (default: 8545, or a free one when 8545 is busy; env AGORA_CHAIN_PORT).",
        ),
    ] = None,
    network: Annotated[str, typer.Option(help="Ape network choice, e.g. ethereum:sepolia:node.")] = LOCAL_NETWORK,
    account: Annotated[str | None, typer.Option(help="Ape account alias that deploys (non-local networks).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Where to write the deployment manifest.")] = None,
) -> None:
    """Start anvil (local network) and deploy the contracts; or deploy to --network with --account."""
    if network == LOCAL_NETWORK:
        info = start_daemon(port)
        if port is None and info.port != preferred_chain_port():
            console.print(
                f"port {preferred_chain_port()} is busy: anvil uses free port {info.port} instead", highlight=False
            )
        console.print(f"anvil running at {info.rpc_url} (chain id {info.chain_id}, pid {info.pid})")
        try:
            deployment = deploy(DeploySettings(network=network, rpc_url=info.rpc_url, account=account))
        except BaseException:
            stop_daemon()
            raise
    else:
        deployment = deploy(DeploySettings(network=network, account=account))
    _print_deployment(deployment, deployment.save(manifest))


@chain_app.command("status")
@friendly_errors
def chain_status() -> None:
    """Show the running local chain, its head block and the deployed contracts."""
    info = running_daemon()
    if info is None:
        console.print("no local chain is running (start one with `agora chain up`)")
        raise typer.Exit(1)
    head = int(str(rpc_call(info.rpc_url, "eth_blockNumber")), 16)
    console.print(f"anvil at {info.rpc_url}, chain id {info.chain_id}, pid {info.pid}, head block {head}")
    path = default_manifest_path(LOCAL_CHAIN_ID)
    if path.exists():
        _print_deployment(Deployment.load(path), path)


@chain_app.command("down")
@friendly_errors
def chain_down() -> None:
    """Stop the local chain started by `agora chain up`."""
    info = stop_daemon()
    if info is None:
        console.print("no local chain was running")
        return
    default_manifest_path(info.chain_id).unlink(missing_ok=True)
    console.print(f"stopped anvil at {info.rpc_url} (pid {info.pid})")


@app.command("demo")
@friendly_errors
def demo(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML or embedded scenario name (default: the 28-agent economy).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write report.json, report.html and the plots.")] = Path(
        "reports/demo"
    ),
    processes: Annotated[
        list[str] | None,
        typer.Option("--processes", help="Run this role's agents in child processes over HTTP (repeatable)."),
    ] = None,
    list_scenarios: Annotated[
        bool, typer.Option("--list", help="List the embedded scenarios (run one by name) and exit.")
    ] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve", help="Keep the chain, registry and live dashboard up during and after the run, until Ctrl-C."
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="With --serve: the dashboard's port (default: 8700, or a free one)."),
    ] = None,
    hosts: Annotated[
        int,
        typer.Option(min=0, max=64, help="Deal the agents over N agent-host processes talking HTTP (0: one process)."),
    ] = 0,
    host_address: Annotated[
        list[str] | None,
        typer.Option(help="With --hosts: the address host i binds (repeat; cycled), e.g. 127.0.0.2 127.0.0.3."),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="With --hosts: `local` child processes, or `ray` actors on a Ray cluster.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --engine ray: the cluster's head (host:port); default: a local Ray.")
    ] = None,
    runner_address: Annotated[
        str,
        typer.Option(
            help="With --hosts on other machines: an address of this machine they reach; the run's chain, registry "
            "and operator listen there (default: loopback)."
        ),
    ] = "127.0.0.1",
    registry_db: Annotated[
        str | None,
        typer.Option(
            envvar="AGORA_REGISTRY_DB",
            help="A PostgreSQL server (postgresql+asyncpg://user@host:port/db) for the run's registry: the run "
            "creates a database of its own there and drops it afterwards. Default: SQLite in the run's folder.",
        ),
    ] = None,
) -> None:
    """Run an economy scenario (a YAML file or an embedded scenario's name) on a fresh local chain with the
    registry and every agent, then write the report. With --serve, watch it live in the dashboard."""
    if port is not None and not serve:
        raise ValueError("--port is the dashboard's port: use it with --serve")
    if list_scenarios:
        from marketplace.sim.scenario import embedded_scenarios

        for name, description in embedded_scenarios().items():
            console.print(f"{name:<12} {description}", highlight=False)
        return
    if (host_address or engine != "local") and not hosts:
        raise ValueError("--host-address and --engine place agent hosts: use them with --hosts N")
    if engine not in ("local", "ray"):
        raise ValueError(f"--engine is `local` or `ray`, not {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("--address names a Ray cluster: use it with --engine ray")
    if registry_db is not None and serve:
        raise ValueError("--registry-db is for the run's own registry; --serve keeps its registry in SQLite")
    if registry_db is not None and not registry_db.startswith("postgresql"):
        raise ValueError(f"--registry-db must be a postgresql+asyncpg:// URL, not {registry_db.split(':')[0]}:…")
    from agents.host import HostLauncher
    from marketplace.sim.hosts import DEFAULT_ADDRESSES, Placement, start_hosts
    from marketplace.sim.runner import ServeOptions, run_demo

    options = ServeOptions(port=port) if serve else None
    launcher: HostLauncher = start_hosts
    if engine == "ray":
        from marketplace.sim.ray_hosts import ray_launcher

        launcher = ray_launcher(address)
    addresses = tuple(host_address or DEFAULT_ADDRESSES)
    placement = Placement(hosts=hosts, addresses=addresses, launcher=launcher, runner_address=runner_address)
    run_demo(scenario, out, console, frozenset(processes or ()), options, placement, registry_db)
    if serve:
        console.print("stopped: agents, registry, dashboard and chain")


scenario_app = typer.Typer(help="Scenario files for `agora demo`.")
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("new")
@friendly_errors
def scenario_new(
    file: Annotated[Path, typer.Argument(help="Where to write the template (refused if it exists).")],
    base: Annotated[str, typer.Option(help="Embedded scenario to start from (see `agora demo --list`).")] = "default",
) -> None:
    """Write a commented scenario template to edit; run it with `agora demo FILE`."""
    from marketplace.sim.scenario import scenario_text

    if file.exists():
        raise FileExistsError(f"{file} exists; choose another name or remove it")
    header = (
        "# Every field has a default: delete what you do not change. A top-level `users: N` sets every\n"
        "# market's user count. Amounts are AGT base units (1 AGT = 10^18).\n"
    )
    file.write_text(header + scenario_text(base))
    console.print(f"wrote {file}; run it with: agora demo {file}")


if __name__ == "__main__":
    app()
