"""What the chain takes: token transfers per second into anvil, through agora's real client and raw.

Baseline (same run): transfers signed beforehand and sent with eth_sendRawTransaction, `--concurrency` at a
time, then every receipt read: what anvil itself takes on this machine. Against it: the same transfers through
`TokenClient.transfer` (agora's ChainConnection: gas estimate, nonce, signing, send, receipt polling), from 1
account and from `--senders` accounts at once, as agents send them. Every transfer's receipt is checked.

Run: .venv/bin/python bench/chain.py [--transfers 600] [--senders 32] [--concurrency 32] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain import ChainConnection, LocalChain, TokenClient, local_chain
from marketplace.chain.node import rpc_call
from marketplace.sim.runner import quiet_libraries

GAS_MONEY = 10**20


async def _rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[object]) -> object:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with session.post(url, json=body) as response:
        answer = await response.json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


async def _bounded(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> float:
    """Run the jobs `concurrency` at a time; seconds taken."""
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def raw_transfers(chain: LocalChain, senders: list[LocalAccount], count: int, concurrency: int) -> float:
    """Pre-signed token transfers, sent raw; transactions per second including every receipt."""
    conn = ChainConnection.connect(chain.deployment, senders[0], chain.rpc_url)
    token = conn.contract("AgoraToken")
    nonces = {a.address: int(rpc_call(chain.rpc_url, "eth_getTransactionCount", [a.address, "pending"]), 16)
              for a in senders}  # fmt: skip
    signed = []
    for i in range(count):
        sender = senders[i % len(senders)]
        tx = await token.functions.transfer(senders[(i + 1) % len(senders)].address, 1).build_transaction(
            {"from": sender.address, "nonce": nonces[sender.address], "gas": 80_000,
             "chainId": chain.deployment.chain_id, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 0}
        )  # fmt: skip
        nonces[sender.address] += 1
        signed.append("0x" + sender.sign_transaction(tx).raw_transaction.hex())
    await conn.close()
    hashes: list[str] = []
    async with aiohttp.ClientSession() as session:

        def send(raw: str) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                hashes.append(str(await _rpc(session, chain.rpc_url, "eth_sendRawTransaction", [raw])))

            return job

        started = time.perf_counter()
        await _bounded(concurrency, [send(raw) for raw in signed])
        for tx_hash in hashes:  # automine: each is mined as it arrives; poll briefly in case it is not yet
            for _ in range(400):
                receipt = await _rpc(session, chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])
                if receipt is not None:
                    break
                await asyncio.sleep(0.005)
            if not isinstance(receipt, dict) or receipt["status"] != "0x1":
                raise RuntimeError(f"transfer {tx_hash} failed: {receipt}")
        return count / (time.perf_counter() - started)


async def client_transfers(chain: LocalChain, senders: list[LocalAccount], count: int, concurrency: int) -> float:
    """The same transfers through TokenClient (estimate, sign, send, wait), `concurrency` at a time, each sender
    with its own connection as each agent has; transactions per second."""
    conns = [ChainConnection.connect(chain.deployment, account, chain.rpc_url) for account in senders]
    for conn in conns:
        await conn.keep_alive()
    tokens = [TokenClient(conn) for conn in conns]

    def transfer(i: int) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            receipt = await tokens[i % len(tokens)].transfer(senders[(i + 1) % len(senders)].address, 1)
            assert receipt["status"] == 1

        return job

    try:
        seconds = await _bounded(concurrency, [transfer(i) for i in range(count)])
    finally:
        for conn in conns:
            await conn.close()
    return count / seconds


async def fund(chain: LocalChain, senders: list[LocalAccount]) -> None:
    async with chain.connect() as conn:
        token = TokenClient(conn)
        for account in senders:
            rpc_call(chain.rpc_url, "anvil_setBalance", [account.address, hex(GAS_MONEY)])
            await token.transfer(account.address, 10**18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=600)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    quiet_libraries()
    load = os.getloadavg()[0]
    senders = [Account.from_key(os.urandom(32)) for _ in range(args.senders)]
    with local_chain(accounts=2) as chain:

        async def run() -> list[tuple[str, float]]:
            await fund(chain, senders)
            raw = await raw_transfers(chain, senders, args.transfers, args.concurrency)
            one = await client_transfers(chain, senders[:1], args.transfers // 4, 1)
            many = await client_transfers(chain, senders, args.transfers, args.concurrency)
            return [
                (f"baseline: pre-signed, raw, {args.concurrency} at a time", raw),
                ("agora client, 1 account, one after another", one),
                (f"agora client, {args.senders} accounts, {args.concurrency} at a time", many),
            ]

        rows = asyncio.run(run())
    baseline = rows[0][1]
    command = "python bench/chain.py " + " ".join(sys.argv[1:])
    lines = [
        "## What the chain takes: token transfers into anvil (bench/chain.py)",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, load average {load:.1f} at start).",
        f"{args.transfers} ERC-20 transfers per row on a fresh anvil (automine, one block per transaction); every",
        "receipt read and checked. The baseline signs beforehand and sends raw; agora's client estimates gas, signs",
        "with its tracked nonce, sends and polls for the receipt, as every agent's transactions do.",
        "",
        "| path | transactions/s | vs baseline |",
        "|---|---:|---:|",
        *(f"| {name} | {rate:,.0f} | {rate / baseline:.2f}× |" for name, rate in rows),
    ]
    if not args.no_write:
        sys.path.insert(0, os.path.dirname(__file__))
        from _results import write_section

        write_section("chain", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
