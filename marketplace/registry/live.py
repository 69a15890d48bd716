"""The dashboard's economy view: chain events folded into balances, channels, jobs, disputes and lineage, plus
what an economy run publishes about itself (its ledger and each market's panel).

Everything here is read by GET /v1/economy only. Chain state comes from the registry's own event watcher; the
run's figures come from `EconomyView.publish_run`, which only code in the registry's process can call (the
`agora demo --serve` runner holds the view): there is no HTTP write path into this view.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketplace.registry.models import EconomyEvent

ESCROWED = "escrowed"
"""Role of the settlement contracts' balances (channel deposits, escrowed jobs, stakes, rewards, campaigns)."""

UNLABELLED = "other"
"""Role of an account nobody named (the treasury before a runner names it, a stranger)."""

MAX_POINTS = 3_000
"""Balance points kept (one per block that moved tokens); older ones merge into the base the series starts from."""

MAX_ROWS = 400
"""Channels, jobs, disputes and models kept each; older ones are dropped first."""


ZERO_ADDRESS = "0x" + "0" * 40


def _int(value: str) -> int:
    return int(value, 0) if value.startswith("0x") else int(value)


def _addr(value: str) -> str:
    return value.lower()


def _bounded_put(rows: dict[int, dict[str, Any]], key: int, row: dict[str, Any]) -> dict[str, Any]:
    if key not in rows and len(rows) >= MAX_ROWS:
        rows.pop(next(iter(rows)))
    return rows.setdefault(key, row)


@dataclass
class BalancePoint:
    """The new token balances of the accounts a block changed (only those: a run may have thousands of accounts)."""

    block: int
    time: float
    changes: dict[str, int]


@dataclass
class EconomyView:
    """Economy state for the dashboard, built from chain events (see module docstring)."""

    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Account (lower-case) → (name, role), named by whoever runs the registry (contracts, the demo's runner)."""
    vouched: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Account → (name, role) from cards whose owner vouches for the agent on chain; `labels` win over these."""
    balances: Counter[str] = field(default_factory=Counter)
    points: deque[BalancePoint] = field(default_factory=deque)
    base: dict[str, int] = field(default_factory=dict)
    """Balances before the oldest kept point."""
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[int, dict[str, Any]] = field(default_factory=dict)
    models: dict[int, dict[str, Any]] = field(default_factory=dict)
    campaigns: dict[int, dict[str, Any]] = field(default_factory=dict)
    attestations: int = 0
    slashed: int = 0
    run: dict[str, Any] = field(default_factory=dict)
    """What the runner last published: scenario, phase, status, ledger figures, market panels."""

    # --- labels -----------------------------------------------------------------------------------
    def label(self, account: str, name: str, role: str) -> None:
        """Name an account for sure (a runner's participant, a contract)."""
        self.labels[_addr(account)] = (name, role)

    def label_vouched(self, account: str, name: str, role: str) -> None:
        """Name an account after a card whose owner vouches for the card's agent (AgentRegistry.agentOf)."""
        self.vouched[_addr(account)] = (name, role)

    def _label_of(self, account: str) -> tuple[str, str] | None:
        key = _addr(account)
        return self.labels.get(key) or self.vouched.get(key)

    def label_contracts(self, addresses: dict[str, str]) -> None:
        """Name the deployed contracts (name → address); their balances count as escrowed."""
        for name, address in addresses.items():
            if name != "AgoraToken":
                self.label(address, name, ESCROWED)

    def name_of(self, account: str) -> str:
        """The label of an account, else the account itself."""
        found = self._label_of(account)
        return account if found is None else found[0]

    # --- chain events -----------------------------------------------------------------------------
    def fold(self, event: EconomyEvent) -> None:
        """Apply one chain event (called by the event feed, once per event, in chain order per contract)."""
        handler = _HANDLERS.get((event.contract, event.event))
        if handler is not None:
            handler(self, event)

    def _transfer(self, event: EconomyEvent) -> None:
        amount = _int(event.args["value"])
        sender, receiver = _addr(event.args["from"]), _addr(event.args["to"])
        if not self.points or self.points[-1].block != event.block:
            if len(self.points) == MAX_POINTS:
                self.base.update(self.points.popleft().changes)
            self.points.append(BalancePoint(event.block, event.time, {}))
        changes = self.points[-1].changes
        for account, delta in ((sender, -amount), (receiver, amount)):
            if account != ZERO_ADDRESS:  # mints and burns
                self.balances[account] += delta
                changes[account] = self.balances[account]

    def _channel(self, event: EconomyEvent) -> None:
        args, key = event.args, _int(event.args["channelId"])
        if event.event == "ChannelOpened":
            row: dict[str, Any] = {"id": key, "sender": args["sender"], "recipient": args["recipient"]}
            row["model"] = _int(args["modelId"])
            _bounded_put(self.channels, key, row).update(deposit=_int(args["deposit"]), claimed=0, state="open")
            return
        found = self.channels.get(key)
        if found is None:
            return
        row = found
        if event.event == "ChannelToppedUp":
            row["deposit"] = _int(args["deposit"])
        elif event.event == "ChannelClaimed":
            row.update(claimed=_int(args["cumulative"]), state="claimed")
        elif event.event == "ChannelRefunded":
            row.update(refunded=_int(args["amount"]), state="closed")

    def _job(self, event: EconomyEvent) -> None:
        args, key = event.args, _int(event.args["jobId"])
        if event.event == "JobCreated":
            row: dict[str, Any] = {"id": key, "client": args["client"], "provider": args["provider"]}
            row["evaluator"] = args["evaluator"]
            _bounded_put(self.jobs, key, row).update(budget=_int(args["budget"]), state="created")
            return
        found = self.jobs.get(key)
        if found is None:
            return
        row = found
        state = _JOB_STATES[event.event]
        if state:
            row["state"] = state
        if event.event == "BudgetSet":
            row["budget"] = _int(args["budget"])
        elif event.event == "JobCompleted":
            row.update(paid=_int(args["providerAmount"]), royalties=_int(args["royalties"]), score=_int(args["score"]))

    def _validation(self, event: EconomyEvent) -> None:
        args = event.args
        if event.event == "Attested":
            self.attestations += 1
            return
        if event.event == "Slashed":
            self.slashed += _int(args["amount"])
            return
        key = _int(args["disputeId"])
        if event.event == "DisputeOpened":
            row: dict[str, Any] = {"id": key, "accused": args["accused"], "challenger": args["challenger"]}
            row["task"] = args["taskId"]
            _bounded_put(self.disputes, key, row).update(state="drawing", committee=[], votes=[])
            return
        found = self.disputes.get(key)
        if found is None:
            return
        row = found
        if event.event == "CommitteeDrawn":
            members, weights = args["members"].split(","), args["weights"].split(",")
            row["committee"] = [{"member": m, "weight": _int(w)} for m, w in zip(members, weights, strict=True)]
            row["state"] = "voting"
        elif event.event == "Voted":
            vote = {"voter": args["voter"], "supports_accused": args["supportsAccused"] == "True"}
            row["votes"].append({**vote, "weight": _int(args["weight"])})
        elif event.event == "DisputeResolved":
            upheld = args["upheld"] == "True"
            row["state"] = ("upheld" if upheld else "slashed") if args["decided"] == "True" else "undecided"
            row["slashed"] = _int(args["slashed"])

    def _model(self, event: EconomyEvent) -> None:
        key = _int(event.args["modelId"])
        parents = [_int(p) for p in event.args["parents"].split(",") if p]
        _bounded_put(self.models, key, {"id": key, "creator": event.args["creator"], "parents": parents})

    def _campaign(self, event: EconomyEvent) -> None:
        args, key = event.args, _int(event.args["campaignId"])
        if event.event == "CampaignCreated":
            row: dict[str, Any] = {"id": key, "advertiser": args["advertiser"], "merchant": args["merchant"]}
            row.update(budget=_int(args["budget"]), payout=_int(args["payout"]), conversions=0, paid=0, roots=0)
            _bounded_put(self.campaigns, key, row)["state"] = "running"
            return
        found = self.campaigns.get(key)
        if found is None:
            return
        if event.event == "RootPublished":
            found["roots"] += 1
        elif event.event == "ConversionClaimed":
            found["conversions"] += 1
            found["paid"] += _int(args["userAmount"]) + _int(args["publisherAmount"])
        elif event.event == "CampaignRefunded":
            found.update(state="refunded", refunded=_int(args["amount"]))

    # --- what the runner publishes ----------------------------------------------------------------
    def publish_run(self, run: dict[str, Any]) -> None:
        """Replace the run's figures (called in-process by the economy runner; JSON-able values only)."""
        self.run = run

    # --- the answer -------------------------------------------------------------------------------
    def role_of(self, account: str) -> str:
        """The role an account's tokens count under in the balance chart."""
        found = self._label_of(account)
        return UNLABELLED if found is None else found[1]

    def series(self, points: int = 240) -> list[dict[str, Any]]:
        """Token balances summed by role, at most `points` of them, evenly spaced over the run, the last included."""
        count = len(self.points)
        wanted = set(range(count)) if count <= points else {int(i * count / points) for i in range(points - 1)}
        wanted.add(count - 1)
        held = dict(self.base)
        by_role: Counter[str] = Counter()
        for account, amount in held.items():
            by_role[self.role_of(account)] += amount
        out = []
        for index, point in enumerate(self.points):
            for account, amount in point.changes.items():
                by_role[self.role_of(account)] += amount - held.get(account, 0)
                held[account] = amount
            if index in wanted:
                out.append({"block": point.block, "time": point.time, "roles": dict(sorted(by_role.items()))})
        return out

    def _named(self, row: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {**row, **{k: self.name_of(row[k]) for k in keys}}

    def snapshot(self) -> dict[str, Any]:
        """The whole view as JSON-able data (GET /v1/economy)."""
        channels = [self._named(c, "sender", "recipient") for c in self.channels.values()]
        jobs = [self._named(j, "client", "provider", "evaluator") for j in self.jobs.values()]
        disputes = []
        for d in self.disputes.values():
            committee = [{**m, "member": self.name_of(m["member"])} for m in d["committee"]]
            votes = [{**v, "voter": self.name_of(v["voter"])} for v in d["votes"]]
            disputes.append({**self._named(d, "accused", "challenger"), "committee": committee, "votes": votes})
        return {
            "block": self.points[-1].block if self.points else None,
            "series": self.series(),
            "channels": {"states": dict(Counter(c["state"] for c in channels)), "rows": channels},
            "jobs": {"states": dict(Counter(j["state"] for j in jobs)), "rows": jobs},
            "validations": {"attestations": self.attestations, "disputes": len(disputes), "slashed": self.slashed},
            "disputes": disputes,
            "lineage": [self._named(m, "creator") for m in self.models.values()],
            "campaigns": [self._named(c, "advertiser", "merchant") for c in self.campaigns.values()],
            "run": self.run,
        }


_JOB_STATES = {
    "BudgetSet": "",
    "JobFunded": "funded",
    "JobSubmitted": "submitted",
    "JobCompleted": "completed",
    "JobRejected": "rejected",
    "JobExpired": "expired",
}

_HANDLERS: dict[tuple[str, str], Callable[[EconomyView, EconomyEvent], None]] = {
    ("AgoraToken", "Transfer"): EconomyView._transfer,
    **{("PaymentChannels", e): EconomyView._channel for e in ("ChannelOpened", "ChannelToppedUp", "ChannelClaimed")},
    ("PaymentChannels", "ChannelRefunded"): EconomyView._channel,
    ("JobEscrow", "JobCreated"): EconomyView._job,
    **{("JobEscrow", e): EconomyView._job for e in _JOB_STATES},
    **{
        ("ValidatorStaking", e): EconomyView._validation
        for e in ("Attested", "Slashed", "DisputeOpened", "CommitteeDrawn", "Voted", "DisputeResolved")
    },
    ("ModelRegistry", "ModelRegistered"): EconomyView._model,
    **{
        ("AdCampaigns", e): EconomyView._campaign
        for e in ("CampaignCreated", "RootPublished", "ConversionClaimed", "CampaignRefunded")
    },
}
