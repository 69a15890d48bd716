"""The default economy end to end: a real chain, the registry, 25 uAgents agents, and the report they produce."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from agents.capabilities.escrow import FundedJob
from agents.state import Repository
from agents.store import AgentStore
from marketplace.sim.report import EconomyReport
from marketplace.sim.runner import run_demo
from tests.sim.conftest import DefaultRun

pytestmark = [pytest.mark.chain, pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture
def first_run(default_run: DefaultRun) -> tuple[EconomyReport, Path, str]:
    """The default scenario's run shared by tests/sim (tests/sim/conftest.py): report, its folder, terminal summary."""
    return default_run.report, default_run.out, default_run.terminal


def test_demo_keepsEveryTokenAccountedFor(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, _, _ = first_run
    assert report.conservation_ok
    assert report.token_supply_before == report.token_supply_after
    held = sum(b.after for b in report.balances.values())
    assert 0 < held <= report.token_supply_after


def test_demo_runsTheWholeMarket(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, _, _ = first_run
    assert sum(1 for b in report.balances.values() if b.role != "treasury") >= 20
    assert report.inference_calls["paid"] >= 100
    assert report.jobs["training"].get("completed", 0) >= 1
    assert report.validations.attestations >= 1
    assert report.channel_claims, "sellers claimed their vouchers"
    assert all(claim["channels"] >= 1 and claim["amount"] > 0 for claim in report.channel_claims)


def test_demo_paysRoyaltiesUpstream(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, _, _ = first_run
    # seller-b sells a fine-tune of seller-a's model: every paid call to seller-b pays seller-a too.
    assert report.royalties.get("seller-a", 0) > 0
    assert report.flows["users→upstream creators (royalties)"] > 0
    # a fine-tune of seller-b's model (itself derived from seller-a's) pays seller-a through JobEscrow too
    assert report.royalties["seller-a"] == (
        report.flows["users→upstream creators (royalties)"] + report.flows["advertisers→upstream creators (royalties)"]
    )


def test_demo_catchesAndSlashesTheDishonestSeller(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, _, _ = first_run
    assert report.validations.disputed >= 1
    assert report.validations.slashed >= 1
    assert report.flows["slashed stakers→winners"] > 0
    disputes = report.markets["inference"]["disputes"]
    decided = [d for d in disputes if d["decided"] and not d["upheld"]]
    assert decided, "a committee decided against the cheating seller"
    assert all("seller-c" in d["slashed"] and len(d["committee"]) >= 1 for d in decided)
    assert all("seller-c" not in d["committee"] for d in disputes), "the accused never sits on its own committee"
    # the cheating seller's bond shrank; honest stakers kept theirs whole
    bond = report.balances["validator-1"].stake_after
    assert bond is not None
    assert report.balances["seller-c"].stake_after is not None
    assert report.balances["seller-c"].stake_after < bond
    assert report.balances["seller-a"].stake_after == bond


def test_demo_refundsTheAdvertiserWhoseSellerDied(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, _, _ = first_run
    escrow_refunds = [r for r in report.refunds if r.kind == "escrow"]
    assert [r.payer for r in escrow_refunds] == ["advertiser-3"]
    assert report.jobs["training"].get("expired") == 1
    assert report.balances["advertiser-3"].after == report.balances["advertiser-3"].before
    assert any(r.kind == "channel" and r.amount > 0 for r in report.refunds)


def test_demo_writesReadableReport(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, out, terminal = first_run
    on_disk = json.loads((out / "report.json").read_text())
    for key in (
        "token_supply_before",
        "token_supply_after",
        "balances",
        "jobs",
        "inference_calls",
        "channel_claims",
        "gas_used",
        "royalties",
        "validations",
        "refunds",
        "conservation_ok",
    ):
        assert key in on_disk
    assert on_disk["conservation_ok"] is True
    for png in ("balances.png", "flows.png", "royalties.png"):
        assert (out / png).stat().st_size > 5_000
    html = (out / "report.html").read_text()
    assert "balances.png" in html
    assert "seller-a" in html
    assert "conservation_ok" in terminal
    assert report.timing["wall_seconds"] < 60


def test_demo_reportsThroughputPerPhaseAndMemoryPerAgent(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, out, terminal = first_run
    phases = {figure.phase: figure for figure in report.throughput}
    assert {"funding", "cards", "models", "inference", "training", "claims", "refunds"} <= set(phases)
    paid = report.inference_calls["paid"]
    assert sum(f.paid_calls for f in report.throughput) == phases["inference"].paid_calls == paid
    # A paid call is at least a voucher and a request taken in by the seller and its receipt and result by the user.
    assert phases["inference"].messages >= 4 * report.inference_calls["paid"]
    # Every agent's transaction happened inside a measured phase (the runner's own transfers come on top).
    assert sum(f.transactions for f in report.throughput) >= sum(g.count for g in report.gas_used.values())
    assert phases["funding"].transactions >= sum(1 for b in report.balances.values() if b.role != "treasury")
    assert all(f.seconds > 0 for f in report.throughput)
    assert report.memory is not None
    assert report.memory.agents == len(report.balances) - 1
    assert 100 * 2**20 < report.memory.peak_bytes < 8 * 2**30
    assert report.memory.anvil_bytes > 0
    assert "Throughput" in (out / "report.html").read_text()
    assert "peak memory (MB) / per agent" in terminal


def test_demo_validatorsInChildProcesses_sameReport(first_run: tuple[EconomyReport, Path, str], tmp_path: Path) -> None:
    """Same seed, the validators (re-execution, disputes, votes, grading) as child processes over HTTP: same report."""
    report, _, _ = first_run
    again = run_demo(None, tmp_path, Console(file=io.StringIO()), processes=frozenset({"validator"}))
    assert again.deterministic_view() == report.deterministic_view()


def test_demo_keepsEveryAgentsBlobsInItsOwnFolder(default_run: DefaultRun) -> None:
    """No shared blob folder: weights stay with the sellers who built them, the advertiser's data with the
    advertiser, and every blob an agent holds lies under its own data folder (fetched by grant, hash-checked)."""
    report, tmp_path = default_run.report, default_run.workdir
    assert report.conservation_ok
    assert not (tmp_path / "blobs").exists()
    holders: dict[str, set[str]] = {}
    for blob in tmp_path.rglob("blobs/*"):
        if blob.is_file():
            relative = blob.relative_to(tmp_path / "agents")  # raises if a blob lies outside an agent's folder
            holders.setdefault(blob.name, set()).add(relative.parts[0])
    assert holders
    sellers = {name for name in report.balances if name.startswith("seller-")}
    users = {name for name in report.balances if name.startswith("user-")}
    held_by_sellers = {blob for blob, names in holders.items() if names & sellers}
    assert held_by_sellers  # every listed model's weights live with a seller
    # Users buy answers, never weights: what they hold is what federated training gave them or they made
    # (global model vectors, their masked updates), none of it a seller's.
    assert all(not holders[blob] & users for blob in held_by_sellers)
    for folder in (tmp_path / "agents").glob("advertiser-*"):
        store = AgentStore(folder / "state.sqlite3")
        jobs = Repository(store, "escrow.client", FundedJob).values()
        store.close()
        assert jobs
        for job in jobs:  # held-out data reaches the evaluator only; training data the provider only
            heldout = holders.get(job.heldout_ref.removeprefix("0x"), set())
            assert heldout - {folder.name}, heldout
            assert not heldout & sellers, heldout
            training = holders.get(job.dataset_ref.removeprefix("0x"), set())
            assert training - {folder.name} <= sellers, training


def test_demo_federatedRoundsImproveTheModelAndSurviveADropout(first_run: tuple[EconomyReport, Path, str]) -> None:
    report, _, _ = first_run
    federated = report.markets["federated"]
    rounds = federated["rounds"]
    assert all(r["completed"] for r in rounds)
    assert rounds[-1]["metric"] > federated["initial_metric"] + 0.02  # held-out AUC of the global model
    assert rounds[-1]["metric"] > rounds[0]["metric"]
    assert [r["dropped"] for r in rounds] == [0, 1, 0]  # user-05 left round 2 after sharing its keys
    assert all(0 < eps <= 60 for name, eps in federated["epsilon"].items() if name in federated["claimed"])
    assert sum(federated["claimed"].values()) == sum(sum(r["rewards"].values()) for r in rounds)
