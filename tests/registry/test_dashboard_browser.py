"""Real browser: Debian's Chromium driven by Playwright opens the dashboard, sees agents and a live chain event."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.paths import project_root
from protocols.cards import Offering, sign_write
from tests.registry.conftest import identity, make_card, registry_id_of

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialling Google's services, which this offline machine refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.chain,
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"{CHROMIUM} missing: run `make browser` (as root: apt-get install -y chromium)",
    ),
]


async def test_dashboard_showsAgentsAndLiveChainEvent(
    chain_registry: TestClient[Any, Any], conn: ChainConnection, chain: LocalChain, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    agents = {
        "inference-seller": make_card(
            identity("ui-seller"),
            name="inference-seller",
            offerings=[
                Offering(model_id="two-tower-v1", job_kind="inference", price_per_unit=25 * 10**16, capacity=8),
                Offering(model_id="clf-v1", job_kind="training", price_per_unit=3 * 10**18, unit="epoch"),
            ],
        ),
        "validator-1": make_card(identity("ui-validator"), role="validator", name="validator-1", offerings=[]),
        "user-7": make_card(identity("ui-user"), role="user", name="user-7", offerings=[]),
    }
    for name, card in agents.items():
        who = identity({"inference-seller": "ui-seller", "validator-1": "ui-validator", "user-7": "ui-user"}[name])
        write = sign_write(who, "register", card, registry=registry_id_of(chain_registry))
        response = await chain_registry.post("/v1/agents", data=write.model_dump_json())
        assert response.status == 201

    base_url = str(chain_registry.make_url("/"))
    profile = tmp_path / "chromium-profile"  # a new, empty user-data-dir per run
    profile.mkdir()
    errors: list[str] = []
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, env={**os.environ}
        )
        try:
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.set_viewport_size({"width": 1360, "height": 760})
            await page.goto(base_url)
            rows = page.locator("#agents tbody tr")
            await expect(rows).to_have_count(3)
            await expect(page.locator("#agents")).to_contain_text("inference-seller")
            await expect(page.locator("#agents")).to_contain_text("0.25 AGT")
            await expect(page.locator("#agents")).to_contain_text("validator-1")
            await expect(page.locator("#stream-state")).to_have_text("live")
            await page.evaluate("window.__notReloaded = true")

            receipt = await TokenClient(conn).transfer(chain.accounts[4].address, 42 * 10**18)
            tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
            event = page.locator(f'#events li[title="{tx_hash}"]')
            await expect(event).to_have_count(1, timeout=10_000)
            await expect(event).to_contain_text("AgoraToken Transfer")
            await expect(event).to_contain_text("42 AGT")
            assert await page.evaluate("window.__notReloaded === true")  # arrived over SSE, no reload

            # A new registration shows up without a reload too.
            late = identity("ui-late")
            card = make_card(late, name="late-seller")
            write = sign_write(late, "register", card, registry=registry_id_of(chain_registry))
            await chain_registry.post("/v1/agents", data=write.model_dump_json())
            await expect(rows).to_have_count(4)

            artifacts = project_root() / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            await page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
        finally:
            await context.close()
    assert errors == []
