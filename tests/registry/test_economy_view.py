"""The dashboard's economy view: chain events folded into channels, jobs, disputes, lineage and balances by role;
GET /v1/economy serves it read-only, fed by the registry's real chain watcher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.registry import live
from marketplace.registry.app import ECONOMY
from marketplace.registry.live import ESCROWED, MAX_ROWS, UNLABELLED, EconomyView
from marketplace.registry.models import EconomyEvent

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
ZERO = "0x" + "00" * 20

_counter = iter(range(1_000_000))


def event(contract: str, name: str, block: int = 1, **args: str) -> EconomyEvent:
    """A decoded chain event as the watcher publishes it (arguments rendered as strings)."""
    index = next(_counter)
    return EconomyEvent(
        id=f"0x{index:064x}:0", source=contract, contract=contract, event=name, block=block,
        tx_hash=f"0x{index:064x}", log_index=0, time=1_700_000_000.0 + block, args=args, summary=name,
    )  # fmt: skip


def test_fold_channelLifecycle_openClaimedClosed() -> None:
    view = EconomyView()
    view.label(ALICE, "user-01", "user")
    view.label(BOB, "seller-a", "seller")
    opened = {"sender": ALICE, "recipient": BOB, "deposit": "500", "expiry": "9", "modelId": "3"}
    view.fold(event("PaymentChannels", "ChannelOpened", channelId="7", **opened))
    assert view.snapshot()["channels"]["states"] == {"open": 1}
    view.fold(event("PaymentChannels", "ChannelToppedUp", channelId="7", amount="100", deposit="600"))
    view.fold(event("PaymentChannels", "ChannelClaimed", channelId="7", recipient=BOB, amount="120", cumulative="120"))
    view.fold(event("PaymentChannels", "ChannelRefunded", channelId="7", sender=ALICE, amount="480"))
    (row,) = view.snapshot()["channels"]["rows"]
    assert row == {
        "id": 7, "sender": "user-01", "recipient": "seller-a", "model": 3, "deposit": 600, "claimed": 120,
        "refunded": 480, "state": "closed",
    }  # fmt: skip


def test_fold_jobStates_followTheEscrow() -> None:
    view = EconomyView()
    created = {"client": ALICE, "provider": BOB, "evaluator": CAROL, "budget": "38", "deadline": "5"}
    for job in ("1", "2"):
        view.fold(event("JobEscrow", "JobCreated", jobId=job, **created))
        view.fold(event("JobEscrow", "JobFunded", jobId=job, amount="38"))
    view.fold(event("JobEscrow", "JobSubmitted", jobId="1", deliverable="0x00", deadline="9"))
    completed = {"reason": "0x00", "score": "77", "evaluatorFee": "1", "royalties": "2", "providerAmount": "35"}
    view.fold(event("JobEscrow", "JobCompleted", jobId="1", **completed))
    view.fold(event("JobEscrow", "JobExpired", jobId="2", refunded="38"))
    jobs = view.snapshot()["jobs"]
    assert jobs["states"] == {"completed": 1, "expired": 1}
    assert jobs["rows"][0] | {"paid": 35, "royalties": 2, "score": 77} == jobs["rows"][0]


def test_fold_dispute_committeeVotesAndOutcome() -> None:
    view = EconomyView()
    view.label(ALICE, "validator-1", "validator")
    view.label(BOB, "seller-c", "seller")
    opened = {"taskId": "0xab", "accused": BOB, "challenger": ALICE, "drawBlock": "3", "deadline": "9"}
    view.fold(event("ValidatorStaking", "DisputeOpened", disputeId="4", **opened))
    assert view.snapshot()["disputes"][0]["state"] == "drawing"
    view.fold(event("ValidatorStaking", "CommitteeDrawn", disputeId="4", members=f"{ALICE},{CAROL}", weights="100,50"))
    view.fold(event("ValidatorStaking", "Voted", disputeId="4", voter=ALICE, supportsAccused="False", weight="100"))
    view.fold(event("ValidatorStaking", "Slashed", validator=BOB, amount="9"))
    resolved = {"decided": "True", "upheld": "False", "slashed": "9", "perWinner": "4", "toTreasury": "1"}
    view.fold(event("ValidatorStaking", "DisputeResolved", disputeId="4", **resolved))
    view.fold(event("ValidatorStaking", "Attested", taskId="0xab", validator=CAROL, resultHash="0x01"))
    snap = view.snapshot()
    (dispute,) = snap["disputes"]
    assert dispute["accused"] == "seller-c"
    assert dispute["challenger"] == "validator-1"
    assert dispute["committee"] == [{"member": "validator-1", "weight": 100}, {"member": CAROL, "weight": 50}]
    assert dispute["votes"] == [{"voter": "validator-1", "supports_accused": False, "weight": 100}]
    assert (dispute["state"], dispute["slashed"]) == ("slashed", 9)
    assert snap["validations"] == {"attestations": 1, "disputes": 1, "slashed": 9}


def test_fold_lineage_andUnknownIdsIgnored() -> None:
    view = EconomyView()
    view.label(ALICE, "seller-a", "seller")
    view.fold(event("ModelRegistry", "ModelRegistered", modelId="1", creator=ALICE, parents=""))
    view.fold(event("ModelRegistry", "ModelRegistered", modelId="3", creator=BOB, parents="1,2"))
    # Events about channels, jobs or disputes this view never saw open change nothing (and do not crash it).
    view.fold(event("PaymentChannels", "ChannelClaimed", channelId="99", recipient=BOB, amount="1", cumulative="1"))
    view.fold(event("JobEscrow", "JobExpired", jobId="99", refunded="1"))
    view.fold(event("ValidatorStaking", "Voted", disputeId="99", voter=ALICE, supportsAccused="True", weight="1"))
    view.fold(event("SomethingNew", "Whatever"))
    snap = view.snapshot()
    assert snap["lineage"] == [
        {"id": 1, "creator": "seller-a", "parents": []},
        {"id": 3, "creator": BOB, "parents": [1, 2]},
    ]
    assert snap["channels"]["rows"] == snap["jobs"]["rows"] == snap["disputes"] == []


def test_fold_manyChannels_keepsTheNewestBounded() -> None:
    view = EconomyView()
    opened = {"sender": ALICE, "recipient": BOB, "deposit": "1", "expiry": "9", "modelId": "1"}
    for channel in range(MAX_ROWS + 25):
        view.fold(event("PaymentChannels", "ChannelOpened", channelId=str(channel), **opened))
    ids = [row["id"] for row in view.snapshot()["channels"]["rows"]]
    assert len(ids) == MAX_ROWS
    assert ids[0] == 25
    assert ids[-1] == MAX_ROWS + 24


def test_series_sumsBalancesByRole_perBlock_sampledWithTheLastKept() -> None:
    view = EconomyView()
    view.label(ALICE, "treasury", "treasury")
    view.label(BOB, "seller-a", "seller")
    view.label_contracts({"AgoraToken": CAROL, "PaymentChannels": CAROL})
    view.fold(event("AgoraToken", "Transfer", block=1, **{"from": ZERO, "to": ALICE, "value": "1000"}))
    view.fold(event("AgoraToken", "Transfer", block=2, **{"from": ALICE, "to": BOB, "value": "300"}))
    view.fold(event("AgoraToken", "Transfer", block=2, **{"from": BOB, "to": CAROL, "value": "100"}))
    stranger = "0x" + "d4" * 20
    view.fold(event("AgoraToken", "Transfer", block=3, **{"from": ALICE, "to": stranger, "value": "5"}))
    series = view.series()
    assert [p["block"] for p in series] == [1, 2, 3]  # two transfers in block 2 make one point
    assert series[1]["roles"] == {ESCROWED: 100, "seller": 200, "treasury": 700}
    assert series[2]["roles"][UNLABELLED] == 5
    for block in range(4, 1_000):
        view.fold(event("AgoraToken", "Transfer", block=block, **{"from": ALICE, "to": BOB, "value": "0"}))
    sampled = view.series(points=50)
    assert len(sampled) == 50
    assert sampled[0]["block"] == 1
    assert sampled[-1]["block"] == 999


def test_label_runnerNamesWinOverVouchedCards() -> None:
    view = EconomyView()
    view.label_vouched(ALICE, "card-name", "advertiser")
    assert view.role_of(ALICE) == "advertiser"
    view.label(ALICE, "user-01", "user")
    view.label_vouched(ALICE, "other-card", "seller")
    assert (view.name_of(ALICE), view.role_of(ALICE)) == ("user-01", "user")


async def test_economyEndpoint_followsTheChain_readOnly(
    chain_registry: TestClient[Any, Any], conn: ChainConnection, chain: LocalChain
) -> None:
    view = chain_registry.server.app[ECONOMY]
    receiver = chain.accounts[5].address
    view.label(receiver, "seller-z", "seller")
    before = (await (await chain_registry.get("/v1/economy")).json())["series"]
    held = before[-1]["roles"].get("seller", 0) if before else 0
    await TokenClient(conn).transfer(receiver, 42 * 10**18)
    for _ in range(100):
        answer = await chain_registry.get("/v1/economy")
        assert answer.status == 200
        series = (await answer.json())["series"]
        if series and series[-1]["roles"].get("seller", 0) == held + 42 * 10**18:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the transfer never reached the economy view: {series[-1:]}")
    assert (await chain_registry.get("/v1/economy", params={"since": "1"})).status == 422
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        refused = await chain_registry.request(method, "/v1/economy", json={"run": {"status": "forged"}})
        assert refused.status == 405, method
    assert (await (await chain_registry.get("/v1/economy")).json())["run"] == {}


def test_fold_adCampaign_conversionsPaidAndRefund() -> None:
    view = EconomyView()
    view.label(ALICE, "advertiser-1", "advertiser")
    created = {"advertiser": ALICE, "merchant": BOB, "publisher": CAROL, "budget": "100", "payout": "10"}
    view.fold(event("AdCampaigns", "CampaignCreated", campaignId="2", **created, publisherBps="0", end="9"))
    view.fold(event("AdCampaigns", "RootPublished", campaignId="2", root="77"))
    for nullifier in ("1", "2"):
        paid = {"payee": CAROL, "userAmount": "8", "publisherAmount": "2"}
        view.fold(event("AdCampaigns", "ConversionClaimed", campaignId="2", nullifier=nullifier, **paid))
    view.fold(event("AdCampaigns", "CampaignRefunded", campaignId="2", advertiser=ALICE, amount="80"))
    (campaign,) = view.snapshot()["campaigns"]
    assert campaign == {
        "id": 2, "advertiser": "advertiser-1", "merchant": BOB, "budget": 100, "payout": 10, "conversions": 2,
        "paid": 20, "roots": 1, "state": "refunded", "refunded": 80,
    }  # fmt: skip


def test_series_oldPointsMergeIntoTheBase_totalsStayRight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "MAX_POINTS", 10)
    view = EconomyView()
    view.label(ALICE, "treasury", "treasury")
    view.label(BOB, "user-01", "user")
    view.fold(event("AgoraToken", "Transfer", block=1, **{"from": ZERO, "to": ALICE, "value": "1000"}))
    for block in range(2, 40):
        view.fold(event("AgoraToken", "Transfer", block=block, **{"from": ALICE, "to": BOB, "value": "3"}))
    series = view.series()
    assert len(series) == 10
    assert [p["block"] for p in series] == list(range(30, 40))
    assert series[0]["roles"] == {"treasury": 1000 - 3 * 29, "user": 3 * 29}
    assert series[-1]["roles"] == {"treasury": 1000 - 3 * 38, "user": 3 * 38}
