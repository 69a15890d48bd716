"""`agora demo`: load a scenario, run the economy with Rich progress, write and summarise the report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from agents.offload import OFFLOAD_ENV
from marketplace.chain import LocalChain
from marketplace.chain.ape_env import configure_ape_environment
from marketplace.registry.live import EconomyView
from marketplace.sim.economy import CLOCK_START, Economy, run_economy
from marketplace.sim.economy import Progress as ProgressHook
from marketplace.sim.hosts import Placement
from marketplace.sim.report import EconomyReport, print_summary, write_report
from marketplace.sim.scenario import Scenario, load_scenario

PHASE_LABELS = {"chain": "anvil + contracts deployed with Ape"}

DASHBOARD_PORT = 8700
"""Where `agora demo --serve` puts the registry and dashboard when the port is free (as `agora registry serve`)."""

PUBLISH_INTERVAL = 0.5
"""Seconds between two publications of the run's figures to the live dashboard."""


@dataclass(frozen=True)
class ServeOptions:
    """`agora demo --serve`: keep the chain, the registry and the dashboard up until Ctrl-C."""

    host: str = "127.0.0.1"
    port: int | None = None
    """Exactly this port (refused when busy); None: 8700 when free, else a free one."""


def dashboard_port(options: ServeOptions) -> tuple[int, str]:
    """The port the dashboard will use and a note when it is not the one asked for (checked before any side effect)."""
    from marketplace.chain.node import free_port, port_is_free

    if options.port is not None:
        if not port_is_free(options.port):
            raise ValueError(f"port {options.port} is busy: choose another --port, or omit it for a free one")
        return options.port, ""
    if port_is_free(DASHBOARD_PORT):
        return DASHBOARD_PORT, ""
    port = free_port()
    return port, f"port {DASHBOARD_PORT} is busy: the dashboard uses free port {port} instead"


def quiet_libraries() -> None:
    # Agents and Ape log every step at INFO; the progress bars tell the story instead.
    configure_ape_environment()
    from ape.logging import logger as ape_logger  # Ape sets its own level when imported: set it after

    ape_logger.set_level("WARNING")
    for name in ("uagents", "web3", "aiohttp", "agora"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


def run_demo(
    scenario_path: Path | None,
    out_dir: Path,
    console: Console,
    processes: frozenset[str] = frozenset(),
    serve: ServeOptions | None = None,
    placement: Placement | None = None,
    registry_database: str | None = None,
) -> EconomyReport | None:
    """Run one scenario end to end and write its report into out_dir; with `serve`, keep everything up for the
    live dashboard until SIGINT/SIGTERM (then the report is None if the run was cut short). The run's registry
    keeps its tables on the Postgres server `registry_database` when given (not with `serve`)."""
    scenario = load_scenario(scenario_path)
    port, note = dashboard_port(serve) if serve is not None else (0, "")
    quiet_libraries()
    if serve is not None:
        # The URL comes first, so a newcomer can open the dashboard while the chain is still deploying.
        console.print(f"dashboard: http://{serve.host}:{port}/ (Ctrl-C stops the chain, registry and dashboard)")
        if note:
            console.print(note, highlight=False)
    console.print(f"scenario [bold]{scenario.name}[/]: {scenario.agent_count} agents, seed {scenario.seed}")
    workdir = Path(tempfile.mkdtemp(prefix="agora-demo-"))
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as bars:  # fmt: skip
            tasks: dict[str, TaskID] = {}
            labels = dict(PHASE_LABELS)
            for plugin in scenario.plugins.values():
                labels.update(plugin.labels())

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bars.add_task(labels.get(phase, phase), total=total)
                bars.update(tasks[phase], completed=done)

            if serve is None:
                report = run_economy(scenario, workdir, progress, processes, placement, registry_database)
            else:
                url = f"http://{serve.host}:{port}/"

                def finished(report: EconomyReport) -> None:
                    _finish(report, out_dir, console, bars.stop)
                    console.print(f"the run is over; the dashboard stays up at {url} until Ctrl-C")

                live = LiveDemo(scenario, workdir, progress, processes, placement or Placement())
                return live.serve(serve.host, port, finished)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _finish(report, out_dir, console, lambda: None)
    return report


def _finish(report: EconomyReport, out_dir: Path, console: Console, stop_bars: Callable[[], None]) -> None:
    stop_bars()
    write_report(report, out_dir)
    print_summary(report, console, out_dir)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM stops a served demo as Ctrl-C does: outside the event loop, both raise KeyboardInterrupt."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore_stop_signals() -> None:
    # Once stopping, a second Ctrl-C must not cut the chain's shutdown short and leave anvil running.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class LiveDemo:
    """One served run: a chain, a registry with the dashboard (watching that chain) and the economy, kept up
    after the run until SIGINT or SIGTERM, then stopped in order: agents, registry, chain."""

    def __init__(
        self,
        scenario: Scenario,
        workdir: Path,
        progress: ProgressHook,
        processes: frozenset[str],
        placement: Placement,
    ) -> None:
        self.scenario = scenario
        self.placement = placement
        self.workdir = workdir
        self.progress = progress
        self.processes = processes

    def serve(self, host: str, port: int, finished: Callable[[EconomyReport], None]) -> EconomyReport | None:
        """Run the economy with the dashboard on host:port; `finished` gets the report once the run ends."""
        from marketplace.chain import local_chain

        os.environ.setdefault(OFFLOAD_ENV, "thread")  # as run_economy: and no pool workers to interrupt on Ctrl-C
        # The dashboard's watcher warns while the node stops under it; that is the shutdown, not news.
        logging.getLogger("marketplace.registry").setLevel(logging.ERROR)
        with _stop_signals_interrupt(), contextlib.suppress(KeyboardInterrupt):
            self.progress("chain", 0, 1)
            with local_chain(accounts=2, genesis_time=int(CLOCK_START), host=self.placement.runner_address) as chain:
                self.progress("chain", 1, 1)
                try:
                    return asyncio.run(self._serve(chain, host, port, finished))
                finally:
                    _ignore_stop_signals()
        return None

    async def _serve(
        self, chain: LocalChain, host: str, port: int, finished: Callable[[EconomyReport], None]
    ) -> EconomyReport | None:
        from aiohttp import web

        from marketplace.registry.app import ECONOMY, RegistrySettings, create_app

        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stopping.set)
        settings = RegistrySettings(
            database_url=f"sqlite+aiosqlite:///{self.workdir / 'registry.sqlite3'}",
            ttl=3600,
            rpc_url=chain.rpc_url,
            deployment=chain.deployment,
        )
        app = create_app(settings)
        view = app[ECONOMY]
        view.label(chain.treasury.address, "treasury", "treasury")
        site = web.AppRunner(app, access_log=None)
        await site.setup()
        try:
            await web.TCPSite(site, host, port).start()
            economy = Economy(self.scenario, chain, self.workdir, self.progress, self.processes,
                              registry_url=f"http://{host}:{port}", **self.placement.economy_kwargs())  # fmt: skip
            return await self._run_until_stopped(economy, view, stopping, finished)
        finally:
            await site.cleanup()
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    async def _run_until_stopped(
        self, economy: Economy, view: EconomyView, stopping: asyncio.Event, finished: Callable[[EconomyReport], None]
    ) -> EconomyReport | None:
        publisher = asyncio.create_task(_publish_forever(economy, view))
        run = asyncio.create_task(economy.run())
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                # Stopped mid-run: agents talking to peers that a terminal's Ctrl-C already stopped fail on the
                # way out; those failures are the shutdown itself, not news worth a traceback.
                logging.disable(logging.CRITICAL)
                run.cancel()  # stops every agent (Economy.run's finally) before the registry and chain go
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                return None
            report = run.result()
            publisher.cancel()
            publish_run(economy, view, "finished")
            finished(report)
            await stop
            return report
        finally:
            for task in (publisher, stop):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def publish_run(economy: Economy, view: EconomyView, status: str) -> None:
    """Name the run's accounts in the dashboard and hand it the ledger so far and every market's panel."""
    for name, member in economy.members.items():
        view.label(member.wallet.eth_address, name, member.spec.role)
    ledger = economy.ledger
    panels = []
    for market, plugin in economy.scenario.plugins.items():
        panel = plugin.panel(ledger.sections.get(market, {}))
        if panel is not None:
            panels.append({"market": market, **panel.model_dump()})
    view.publish_run(
        {
            "scenario": economy.scenario.name,
            "status": status,
            "phase": economy.current_phase,
            "calls": dict(ledger.calls),
            "jobs": {kind: dict(counts) for kind, counts in ledger.jobs.items()},
            "royalties": dict(ledger.royalties),
            "validations": ledger.validations.model_dump(),
            "refunds": len(ledger.refunds),
            "panels": panels,
        }
    )


async def _publish_forever(economy: Economy, view: EconomyView) -> None:
    while True:
        publish_run(economy, view, "running")
        await asyncio.sleep(PUBLISH_INTERVAL)
