"""One federated round with 100 clients, DP-SGD and secure aggregation, against a plain FedAvg round of the same model.

Private round: each client trains with DP-SGD (Opacus, per-record clip and noise) on its 64-event history and
clips its update; then SecAgg+ (X25519, HKDF, Shamir shares sealed with AES-GCM, ChaCha20 masks, k neighbours):
key sharing, masking, unmasking with a few clients dropping after sharing their keys; the aggregate updates the
model; the reward root is posted to FederatedRewards on anvil. The baseline runs the same local steps without DP
and averages the updates in the clear, in the same run. The simulated clients' work (training, sharing, masking)
and the server's Shamir combines run in batches through the project's offload pool (`--workers` spawned processes,
2 by default, as on the 2-core target). Both rounds' local training is timed on that pool, in the same batches,
and in this process; for each the faster counts. This is the cost of the protocol's computation,
without message transport, which agents add. `AGORA_OFFLOAD=inline` runs everything in this process.

Run: .venv/bin/python bench/federated.py [--clients 100] [--neighbours 20] [--dropouts 5] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from agents.offload import OFFLOAD_ENV, configure_offload, offload, shutdown_offload, warm_up
from marketplace.chain import local_chain
from marketplace.chain.federated import FederatedRewardsClient, FederatedTerms, RewardTree
from marketplace.chain.token import TokenClient
from marketplace.ml import RecommenderSpec
from marketplace.ml.federated.local import DPConfig, LocalConfig, evaluate, fedavg, initial_weights, train_many
from marketplace.ml.federated.secagg import (
    Advert,
    ClientRound,
    MaskedInput,
    Quantisation,
    RebuiltSecrets,
    RoundConfig,
    ServerRound,
    rebuild_secrets,
)
from marketplace.ml.federated.shopping import heldout_events, user_history

AGT = 10**18
EVENTS = 64
T = TypeVar("T")
R = TypeVar("R")


class Clock:
    """Accumulates wall time per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, since: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - since


def parts(items: Sequence[T], count: int) -> list[list[T]]:
    """`items` cut into `count` contiguous runs of about equal length (one job per pool worker)."""
    size = -(-len(items) // count)
    return [list(items[k : k + size]) for k in range(0, len(items), size)]


async def on_pool(fn: Callable[..., list[R]], chunks: list[Any], *shared: Any) -> list[R]:
    """Run `fn(chunk, *shared)` for every chunk through the project's offload pool; results concatenated in order."""
    results = await asyncio.gather(*(offload(fn, chunk, *shared) for chunk in chunks))
    return [item for result in results for item in result]


def share_keys(clients: list[ClientRound], adverts: tuple[Advert, ...]) -> list[tuple[ClientRound, tuple[Any, ...]]]:
    """Step 3 for a batch of simulated clients: each client (its state advanced) with its sealed shares."""
    return [(client, client.share_keys(adverts)) for client in clients]


def mask(batch: list[tuple[ClientRound, np.ndarray, tuple[Any, ...]]]) -> list[tuple[ClientRound, MaskedInput]]:
    """Step 4 for a batch of simulated clients: (client, update, its inbox) → (client, masked input)."""
    return [(client, client.masked_input(update, inbox)) for client, update, inbox in batch]


async def train(
    spec: RecommenderSpec, weights: np.ndarray, histories: list, config: LocalConfig, workers: int
) -> list[np.ndarray]:
    """Every client's local update, the clients split evenly over the pool's workers (seed = client index)."""
    seeds = list(range(len(histories)))
    jobs = [
        offload(train_many, spec, weights, [histories[i] for i in chunk], config, chunk)
        for chunk in parts(seeds, workers)
    ]
    return [update.delta for batch in await asyncio.gather(*jobs) for update in batch]


async def plain_round(
    spec: RecommenderSpec, weights: np.ndarray, histories: list, config: LocalConfig, workers: int
) -> tuple[float, float]:
    """The baseline: local training without DP, FedAvg in the clear; seconds (in this process, on the pool).

    Plain steps are so cheap that shipping the updates back from the pool can cost more than it saves, so the
    round is timed both ways and the faster one is the baseline.
    """
    seconds = []
    for pooled in (False, True):
        started = time.perf_counter()
        if pooled:
            updates = await train(spec, weights, histories, config, workers)
        else:
            batch = train_many(spec, weights, histories, config, list(range(len(histories))))
            updates = [update.delta for update in batch]
        fedavg(weights, updates, [1.0] * len(updates))
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


async def private_round(
    spec: RecommenderSpec,
    weights: np.ndarray,
    histories: list,
    config: LocalConfig,
    args: argparse.Namespace,
) -> tuple[Clock, np.ndarray, list[int]]:
    """DP-SGD + SecAgg+ with `args.dropouts` clients leaving after key sharing; (phase times, weights, survivors).

    The clients' work (training, sharing, masking) runs in batches on the pool; training is also timed in this
    process, as the plain round's is, and the faster counts. The server's Shamir combines run on the pool too, in
    `args.workers` chunks.
    """
    clock = Clock()
    n, workers = len(histories), args.workers
    ids = tuple(range(1, n + 1))
    quantisation = Quantisation(clip=1.0, scale_bits=16)
    threshold = args.neighbours // 2 + 1 if args.neighbours < n - 1 else n // 2 + 1
    degree = args.neighbours if args.neighbours < n - 1 else None
    config_sa = RoundConfig(os.urandom(32), ids, threshold, degree, len(weights), quantisation)

    # Timed in this process and on the pool, like the baseline; the faster counts (the updates are the same bits).
    started = time.perf_counter()
    train_many(spec, weights, histories, config, list(range(n)))
    inline = time.perf_counter() - started
    started = time.perf_counter()
    updates = dict(zip(ids, await train(spec, weights, histories, config, workers), strict=True))
    pooled = time.perf_counter() - started
    clock.seconds[f"local training (DP-SGD; in one process {inline:.2f} s / on the pool {pooled:.2f} s)"] = min(
        inline, pooled
    )

    started = time.perf_counter()
    clients = {i: ClientRound(config_sa, i) for i in ids}
    server = ServerRound(config_sa)
    adverts = server.collect_adverts([c.advertise() for c in clients.values()])
    shared = await on_pool(share_keys, parts(list(clients.values()), workers), adverts)
    clients = {client.me: client for client, _ in shared}
    routed = server.route_shares(message for _, sealed in shared for message in sealed)
    clock.add("key sharing (X25519, Shamir, AES-GCM)", started)

    dropped = set(ids[: args.dropouts])
    started = time.perf_counter()
    alive = [(clients[i], updates[i], routed.get(i, ())) for i in ids if i not in dropped]
    masked = await on_pool(mask, parts(alive, workers))
    clients.update((client.me, client) for client, _ in masked)
    clock.add("masking (ChaCha20)", started)

    started = time.perf_counter()
    request = server.collect_masked_inputs(message for _, message in masked)
    shares = server.collect_unmask_responses(clients[i].unmask(request) for i in request.survivors)
    rebuilt = await asyncio.gather(*(offload(rebuild_secrets, chunk) for chunk in shares.chunks(workers)))
    result = server.finish(RebuiltSecrets.merge(rebuilt))
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


def write_results(table: str, command: str, load: float, workers: int) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md; other sections are left alone."""
    from _results import write_section  # bench/ is on sys.path when a benchmark runs as a script

    write_section(
        "federated",
        [
            "## Federated round: 100 clients, DP-SGD + secure aggregation (bench/federated.py)",
            "",
            f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, load average {load:.1f} at start).",
            f"The simulated clients' work runs in batches on the offload pool ({workers} spawned workers, 1 torch"
            if workers
            else "Everything runs in this process (1 torch thread), the offload pool made inline by the environment",
            "thread each); the model is the default two-tower recommender; each client holds 64 events. Baseline:"
            if workers
            else "variable; the model is the default two-tower recommender; each client holds 64 events. Baseline:",
            "the same local steps without DP, averaged in the clear, in the same run. Both rounds' training is",
            "timed in this process and on the pool; for each the faster counts.",
            "",
            table,
        ],
    )


async def run(args: argparse.Namespace) -> tuple[str, float]:
    """Warm the pool up, run the plain and the private round on it, settle; (the table, load at start)."""
    configure_offload(max_workers=args.workers)  # kind from AGORA_OFFLOAD (default: spawned processes)
    await warm_up()
    load = os.getloadavg()[0]
    spec = RecommenderSpec()
    histories = [user_history(spec, u % spec.num_users, EVENTS, seed=u) for u in range(args.clients)]
    heldout = heldout_events(spec, range(min(args.clients, spec.num_users)), 2_000, seed=1)
    weights = initial_weights(spec, 0)
    dp = LocalConfig(lr=1.0, batch_size=16, local_steps=4, update_clip=2.0, dp=DPConfig(1.0, 1.0))
    plain = LocalConfig(lr=1.0, batch_size=16, local_steps=4, update_clip=2.0, dp=None)
    for config in (dp, plain):  # every worker (and this process) builds its trainer and runs both paths once
        await train(spec, weights, histories[: 2 * args.workers], config, args.workers)
        train_many(spec, weights, histories[:2], config, [0, 1])

    inline_seconds, pooled_seconds = await plain_round(spec, weights, histories, plain, args.workers)
    plain_seconds = min(inline_seconds, pooled_seconds)
    clock, private, survivors = await private_round(spec, weights, histories, dp, args)
    await settle(survivors, clock)
    shutdown_offload()
    total = sum(clock.seconds.values())
    rows = [f"| {phase} | {seconds:.2f} s |" for phase, seconds in clock.seconds.items()]
    ratio = total / plain_seconds
    training = next(iter(clock.seconds.values()))
    table = "\n".join(
        [
            "| round / phase | time |",
            "|---|---:|",
            *rows,
            f"| **private round, total** ({len(survivors)} survivors, {args.dropouts} dropped) | **{total:.2f} s** |",
            f"| plain FedAvg round, same clients and steps, in one process / on the pool | {inline_seconds:.2f} s / "
            f"{pooled_seconds:.2f} s |",
            f"| baseline: the faster plain round | {plain_seconds:.2f} s |",
            f"| **privacy overhead** | **{ratio:.1f}×** (goal ≤ 3×: {'met' if ratio <= 3 else 'NOT met'}) |",
            f"| of which DP-SGD training alone, against the plain round | {training / plain_seconds:.1f}× |",
            f"| goal ≤ 8 s per private round | {'met' if total <= 8.0 else 'NOT met'} |",
            f"| held-out AUC after the private round (from {evaluate(spec, weights, heldout).score:.3f}) "
            f"| {evaluate(spec, private, heldout).score:.3f} |",
        ]
    )
    return table, load


def main() -> None:
    """Parse arguments, run both rounds, print and record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--neighbours", type=int, default=20)
    parser.add_argument("--dropouts", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="offload pool size; the clients are split evenly")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table, load = asyncio.run(run(args))
    print(table)
    if not args.no_write:
        kind = os.environ.get(OFFLOAD_ENV)
        command = (f"{OFFLOAD_ENV}={kind} " if kind else "") + "python bench/federated.py " + " ".join(sys.argv[1:])
        write_results(table, command.strip(), load, args.workers if kind in (None, "process") else 0)


if __name__ == "__main__":
    main()
