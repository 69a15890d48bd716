"""One federated round with 100 clients, DP-SGD and secure aggregation, against a plain FedAvg round of the same model.

Private round: each client trains with DP-SGD (Opacus, per-record clip and noise) on its 64-event history and
clips its update; then SecAgg+ (X25519, HKDF, Shamir shares sealed with AES-GCM, ChaCha20 masks, k neighbours):
key sharing, masking, unmasking with a few clients dropping after sharing their keys; the aggregate updates the
model; the reward root is posted to FederatedRewards on anvil. The baseline runs the same local steps without
DP and averages the updates in the clear, in the same run. Everything runs in one process (the cost of the
protocol's computation, without message transport, which agents add).

Run: .venv/bin/python bench/federated.py [--clients 100] [--neighbours 20] [--dropouts 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import numpy as np
import torch

from marketplace.chain import local_chain
from marketplace.chain.federated import FederatedRewardsClient, FederatedTerms, RewardTree
from marketplace.chain.token import TokenClient
from marketplace.ml import RecommenderSpec
from marketplace.ml.federated.local import DPConfig, LocalConfig, LocalTrainer, evaluate, fedavg, initial_weights
from marketplace.ml.federated.secagg import ClientRound, Quantisation, RoundConfig, ServerRound
from marketplace.ml.federated.shopping import heldout_events, user_history

AGT = 10**18
EVENTS = 64


class Clock:
    """Accumulates wall time per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, since: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - since


def plain_round(
    trainer: LocalTrainer, weights: np.ndarray, histories: list, config: LocalConfig
) -> tuple[float, np.ndarray]:
    """The baseline: local training without DP, FedAvg in the clear; (seconds, new weights)."""
    started = time.perf_counter()
    updates = [trainer.train(weights, h, config, seed=i).delta for i, h in enumerate(histories)]
    new = fedavg(weights, updates, [1.0] * len(updates))
    return time.perf_counter() - started, new


def private_round(
    trainer: LocalTrainer, weights: np.ndarray, histories: list, config: LocalConfig, neighbours: int, dropouts: int
) -> tuple[Clock, np.ndarray, list[int]]:
    """DP-SGD + SecAgg+ with `dropouts` clients leaving after key sharing; (phase times, new weights, survivors)."""
    clock = Clock()
    n = len(histories)
    ids = tuple(range(1, n + 1))
    quantisation = Quantisation(clip=1.0, scale_bits=16)
    threshold = neighbours // 2 + 1 if neighbours < n - 1 else n // 2 + 1
    degree = neighbours if neighbours < n - 1 else None
    config_sa = RoundConfig(os.urandom(32), ids, threshold, degree, len(weights), quantisation)

    started = time.perf_counter()
    updates = {i: trainer.train(weights, histories[i - 1], config, seed=i).delta for i in ids}
    clock.add("local training (DP-SGD)", started)

    started = time.perf_counter()
    clients = {i: ClientRound(config_sa, i) for i in ids}
    server = ServerRound(config_sa)
    adverts = server.collect_adverts([c.advertise() for c in clients.values()])
    sealed = [s for c in clients.values() for s in c.share_keys(adverts)]
    routed = server.route_shares(sealed)
    clock.add("key sharing (X25519, Shamir, AES-GCM)", started)

    dropped = set(ids[:dropouts])
    started = time.perf_counter()
    masked = [clients[i].masked_input(updates[i], routed.get(i, ())) for i in ids if i not in dropped]
    clock.add("masking (ChaCha20)", started)

    started = time.perf_counter()
    request = server.collect_masked_inputs(masked)
    responses = [clients[i].unmask(request) for i in request.survivors]
    result = server.aggregate(responses)
    new = (weights + result.total / result.count).astype(np.float32)
    clock.add("unmasking (Shamir combine)", started)
    return clock, new, list(result.survivors)


async def settle(survivors: list[int], clock: Clock) -> None:
    """Post the round's reward root on anvil and pay one claim (what the aggregator and a user do on chain)."""
    with local_chain(accounts=3) as chain:
        async with chain.connect() as conn:
            sponsor = conn.with_account(chain.accounts[1])  # aggregating its own job (no validator to stake here)
            await TokenClient(conn).transfer(chain.accounts[1].address, 10 * AGT)
            rewards = FederatedRewardsClient(sponsor)
            await TokenClient(sponsor).approve(rewards.address, 10 * AGT)
            deadline = int((await conn.w3.eth.get_block("latest"))["timestamp"]) + 3_600
            job = await rewards.create_job(FederatedTerms(chain.accounts[1].address, 10 * AGT, deadline, 86_400))
            accounts = {f"0x{i:040x}": 10**16 for i in survivors}
            started = time.perf_counter()
            tree = RewardTree(job.job_id, 1, accounts)
            await rewards.post_tree(tree)
            await rewards.claim(tree.claim(next(iter(accounts))))
            clock.add("settlement (root posted, one claim)", started)


def write_results(table: str, command: str, load: float) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md; other sections are left alone."""
    from _results import write_section  # bench/ is on sys.path when a benchmark runs as a script

    write_section(
        "federated",
        [
            "## Federated round: 100 clients, DP-SGD + secure aggregation (bench/federated.py)",
            "",
            f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, load average {load:.1f} at start).",
            "One process, 1 torch thread; the model is the default two-tower recommender; each client holds 64",
            "events. Baseline: the same local steps without DP, averaged in the clear, same run.",
            "",
            table,
        ],
    )


def main() -> None:
    """Parse arguments, run both rounds, print and record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--neighbours", type=int, default=20)
    parser.add_argument("--dropouts", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    spec = RecommenderSpec()
    histories = [user_history(spec, u % spec.num_users, EVENTS, seed=u) for u in range(args.clients)]
    heldout = heldout_events(spec, range(min(args.clients, spec.num_users)), 2_000, seed=1)
    weights = initial_weights(spec, 0)
    trainer = LocalTrainer(spec)
    dp = LocalConfig(lr=1.0, batch_size=16, local_steps=4, update_clip=2.0, dp=DPConfig(1.0, 1.0))
    plain = LocalConfig(lr=1.0, batch_size=16, local_steps=4, update_clip=2.0, dp=None)
    trainer.train(weights, histories[0], dp, seed=0)  # warm both paths up outside the timing
    trainer.train(weights, histories[0], plain, seed=0)

    plain_seconds, _ = plain_round(trainer, weights, histories, plain)
    clock, private, survivors = private_round(trainer, weights, histories, dp, args.neighbours, args.dropouts)
    asyncio.run(settle(survivors, clock))
    total = sum(clock.seconds.values())
    rows = [f"| {phase} | {seconds:.2f} s |" for phase, seconds in clock.seconds.items()]
    goal = "met" if total <= 8.0 else "NOT met"
    ratio = total / plain_seconds
    table = "\n".join(
        [
            "| round / phase | time |",
            "|---|---:|",
            *rows,
            f"| **private round, total** ({len(survivors)} survivors, {args.dropouts} dropped) | **{total:.2f} s** |",
            f"| plain FedAvg round, same clients and steps (baseline) | {plain_seconds:.2f} s |",
            f"| **privacy overhead** | **{ratio:.1f}×** (goal ≤ 3×: {'met' if ratio <= 3 else 'NOT met'}) |",
            f"| goal ≤ 8 s per private round | {goal} |",
            f"| held-out AUC after the private round (from {evaluate(spec, weights, heldout).score:.3f}) "
            f"| {evaluate(spec, private, heldout).score:.3f} |",
        ]
    )
    print(table)
    if not args.no_write:
        write_results(table, "python bench/federated.py " + " ".join(sys.argv[1:]), load)


if __name__ == "__main__":
    main()
