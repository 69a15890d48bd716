"""`agora demo --serve` as the README's quick start runs it: Debian's Chromium (Playwright) watches the default
economy live, without reloading, and Ctrl-C (SIGINT) then stops everything with exit code 0 and no orphan anvil.
The quick start's `make demo` line runs as written too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from marketplace.chain.node import free_port
from marketplace.paths import project_root
from tests.registry.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

ROOT = project_root()
DASHBOARD_LINE = re.compile(r"^dashboard: (http://[\d.]+:\d+/) \(Ctrl-C stops")

pytestmark = [pytest.mark.chain, pytest.mark.e2e, pytest.mark.slow]

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} missing: run `make browser` (as root: apt-get install -y chromium)",
)


def quickstart_commands() -> list[list[str]]:
    """The command lines of README.md's quick-start block, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart:start -->\n```bash\n(.*?)```\n<!-- quickstart:end -->", readme, re.S)
    assert block is not None, "README lost its quick start"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]


def test_readmeQuickStart_showsMakeDemoThenTheLiveDashboard() -> None:
    assert quickstart_commands() == [["make", "demo"], [".venv/bin/agora", "demo", "--serve"]]


def test_readmeQuickStart_makeDemo_runsTheEconomyAndWritesTheReport() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        quickstart_commands()[0], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "conservation_ok" in done.stdout
    assert "report: reports/demo/report.html" in done.stdout
    assert (ROOT / "reports" / "demo" / "report.json").is_file()


async def _read_lines(stream: asyncio.StreamReader, sink: list[str], url: asyncio.Future[str] | None = None) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip("\n")
        sink.append(text)
        found = DASHBOARD_LINE.match(text)
        if found and url is not None and not url.done():
            url.set_result(found.group(1))
    if url is not None and not url.done():
        url.set_exception(AssertionError("agora demo --serve ended without printing the dashboard URL"))


async def _wait_until_serving(url: str, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "v1/health") as answer:
                    if answer.status == 200:
                        return
            assert loop.time() < deadline, f"the dashboard at {url} never answered"
            await asyncio.sleep(0.5)


def _children(pid: int) -> dict[int, str]:
    """Direct child processes of pid: pid → command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def _running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_chromium
async def test_demoServe_dashboardShowsTheEconomyLive_andCtrlCStopsEverything(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    command = quickstart_commands()[1]
    command[0] = str(ROOT / command[0])  # the README runs it from the checkout; here the report goes to tmp_path
    env = {**os.environ, "COLUMNS": "200", "AGORA_HOME": str(tmp_path / "home")}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[str] = []
    err: list[str] = []
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    readers = [
        asyncio.create_task(_read_lines(process.stdout, out, url)),
        asyncio.create_task(_read_lines(process.stderr, err)),
    ]
    try:
        base = await asyncio.wait_for(url, timeout=120)
        assert out[0].startswith("dashboard: "), out  # the URL is the first thing printed
        await _wait_until_serving(base, asyncio.get_running_loop().time() + 180)
        anvil = [pid for pid, cmd in _children(process.pid).items() if "anvil" in cmd]
        assert len(anvil) == 1, _children(process.pid)

        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        errors: list[str] = []
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, env={**os.environ}
            )
            try:
                page = await context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.set_viewport_size({"width": 1360, "height": 900})
                await page.goto(base)
                await page.evaluate("window.__notReloaded = true")
                chart = page.locator("#balance-chart")
                await expect(chart).not_to_have_attribute("data-points", "0", timeout=120_000)
                first_points = int(await chart.get_attribute("data-points") or "0")
                await page.wait_for_function(
                    f"Number(document.getElementById('balance-chart').dataset.points) > {first_points}",
                    timeout=120_000,
                )
                assert await page.locator("#balance-chart polyline").count() >= 2

                channel = page.locator("#channels tbody tr").first
                await channel.wait_for(timeout=180_000)
                # Seen while the economy still runs, not replayed after it.
                assert "finished" not in await page.locator("#run-state").inner_text()
                await page.locator("#jobs tbody tr").first.wait_for(timeout=180_000)
                dispute = page.locator("#disputes li").first
                await dispute.wait_for(timeout=180_000)
                await expect(dispute).to_contain_text("committee:")
                await expect(dispute.locator(".vote.against, .vote.for").first).to_be_visible(timeout=120_000)
                await expect(page.locator('[data-market="federated"]')).to_contain_text("held-out AUC", timeout=240_000)
                await expect(page.locator("#run-state")).to_contain_text("finished", timeout=300_000)
                await expect(page.locator("#lineage tbody tr").first).to_be_visible()
                assert await page.evaluate("window.__notReloaded === true")  # all of it arrived by polling

                artifacts = ROOT / "test-artifacts"
                artifacts.mkdir(exist_ok=True)
                await page.screenshot(path=str(artifacts / "live-dashboard.png"), full_page=True)
            finally:
                await context.close()
        assert errors == []
        assert (tmp_path / "reports" / "demo" / "report.json").is_file()
        assert _running(process.pid)  # still serving after the run

        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for reader in readers:
            await reader
    text = "\n".join(out + err)
    assert code == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "KeyboardInterrupt" not in text, text[-3000:]
    assert out[-1] == "stopped: agents, registry, dashboard and chain", out[-5:]
    assert not _running(anvil[0]), "anvil outlived agora demo --serve"
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as session, session.get(base + "v1/health"):
            pass


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigterm-to-agora", "ctrl-c-to-the-terminal-group"],
)
async def test_demoServe_stoppedMidRun_exitsCleanlyWithoutOrphans(
    tmp_path: Path, signum: signal.Signals, whole_group: bool
) -> None:
    # A terminal's Ctrl-C reaches every process of the foreground group (anvil included), SIGTERM only agora.
    command = [str(ROOT / ".venv/bin/agora"), "demo", "--serve", "--port", str(free_port())]
    env = {**os.environ, "COLUMNS": "200", "AGORA_HOME": str(tmp_path / "home")}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[str] = []
    err: list[str] = []
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    readers = [
        asyncio.create_task(_read_lines(process.stdout, out, url)),
        asyncio.create_task(_read_lines(process.stderr, err)),
    ]
    try:
        base = await asyncio.wait_for(url, timeout=120)
        await _wait_until_serving(base, asyncio.get_running_loop().time() + 180)
        anvil = [pid for pid, cmd in _children(process.pid).items() if "anvil" in cmd]
        assert len(anvil) == 1
        async with aiohttp.ClientSession() as session:
            for _ in range(600):  # until the agents trade: cards are up and the run reports a phase
                async with session.get(base + "v1/economy") as answer:
                    if (await answer.json()).get("run", {}).get("phase"):
                        break
                await asyncio.sleep(0.2)
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        for reader in readers:
            await reader
    text = "\n".join(out + err)
    assert code == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "KeyboardInterrupt" not in text, text[-3000:]
    assert out[-1] == "stopped: agents, registry, dashboard and chain", out[-5:]
    assert "report:" not in text  # cut short: no report claims to describe the run
    assert not _running(anvil[0]), "anvil outlived agora demo --serve"
