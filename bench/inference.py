"""Paid inference throughput: calls/s through one seller, overhead per call vs raw torch, settlement gas per call.

Each paid call is two request/response exchanges between uAgents agents in one process (Bureau style):
an EIP-712 voucher for the cumulative amount (signature checked, stored durably), then the inference
request (credit checked, model run, commitment computed). The seller is the economy's seller role
(`agents.roles.seller.build`, driven by control commands); the buyer pays through the channel payer
capability (`agents.capabilities.payment.ChannelPayer`). The baseline is the same model's raw forward
pass, measured in the same run. Settlement is one claimMany on the real PaymentChannels contract.

Run: .venv/bin/python bench/inference.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Empty, call
from agents.capabilities.inference import rows_to_inputs
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import BuyerLimits, NegotiationBuyer
from agents.capabilities.payment import ChannelPayer
from agents.roles import seller as seller_role
from agents.roles.seller import BUILD_MODELS, BuildModels, ModelOffer
from agents.roles.selling import CLAIM
from agents.settings import AgentSettings
from agents.settlement import SettlementSettings
from agents.wallet import Wallet
from marketplace.chain import LocalChain, TokenClient, local_chain
from marketplace.chain.node import rpc_call
from marketplace.ml import load_model
from marketplace.ml.inference import time_raw_inference
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec

AGT = 10**18
PRICE = 10**16
ROWS = [[3.0, 17.0], [3.0, 99.0], [3.0, 512.0], [3.0, 700.0]]
MODEL = ModelOffer(id="rec-bench", kind="recommender", price_per_call=PRICE, reserve_price=PRICE)


async def measure(chain: LocalChain, calls: int, workdir: Path) -> dict[str, float]:
    """Run `calls` paid calls and one claim; return the figures."""
    manifest = chain.deployment.save(workdir / "deployment.json")
    wallets = {name: Wallet.from_seed(f"bench:{name}") for name in ("operator", "seller", "buyer")}
    for wallet in wallets.values():
        rpc_call(chain.rpc_url, "anvil_setBalance", [wallet.eth_address, hex(10**20)])

    def settings(name: str) -> AgentSettings:
        return AgentSettings(name=name, seed=f"bench:{name}", data_dir=workdir / name)

    operator = AgoraAgent(settings("operator"), AgentDeps(wallet=wallets["operator"]))
    options = {
        "rpc_url": chain.rpc_url,
        "manifest": str(manifest),
        "operators": [operator.address],
    }
    seller = seller_role.build(settings("seller"), AgentDeps(wallet=wallets["seller"]), options)
    buyer = AgoraAgent(settings("buyer"), AgentDeps(wallet=wallets["buyer"]))
    market = SettlementSettings(chain.rpc_url, manifest).connect(wallets["buyer"])
    negotiation, payer = NegotiationBuyer(buyer), ChannelPayer(buyer, market)
    compose(buyer, negotiation, payer)
    for name in ("operator", "seller", "buyer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    async with chain.connect() as conn:
        await TokenClient(conn).transfer(market.account, 10 * AGT)
    seller_account = wallets["seller"].eth_address
    await operator.start()
    await seller.start()
    await buyer.start()
    try:
        await call(operator, seller.address, BUILD_MODELS, BuildModels(models=[MODEL], world_seed=1), wait=600)
        listed = await market.models.get(MODEL.id)
        model = load_model(seller.blobs.get(listed.content_hash), listed.content_hash)  # the baseline runs it here
        deal = await negotiation.negotiate(
            [seller.address],
            JobSpec(kind="inference", model_id="recommender", units=calls),
            BuyerLimits(PRICE * calls, PRICE * calls),
        )
        assert deal is not None
        channel = await payer.open(seller.address, seller_account, PRICE * calls, 3600, listed.chain_id)
        started = time.perf_counter()
        for i in range(calls):
            job = f"bench-{i}"
            await payer.pay(channel, PRICE, job)
            await buyer.request(
                seller.address,
                InferenceRequest(job_id=job, model_id=MODEL.id, inputs=ROWS, price=PRICE),
                InferenceResult,
            )
        paid_seconds = time.perf_counter() - started
        raw = statistics.median(time_raw_inference(model, rows_to_inputs(model.spec, ROWS), 200) for _ in range(5))
        claimed = await call(operator, seller.address, CLAIM, Empty())
        assert len(claimed.claims) == 1, "the seller should settle every call in one claimMany"
        pairs, claim_gas = claimed.claims[0]
        assert pairs == [(channel, PRICE * calls)]
        transfer_gas = 0
        for _ in range(3):
            transfer = await market.token.transfer(seller_account, 1)
            transfer_gas = int(transfer["gasUsed"])
    finally:
        await buyer.stop()
        await seller.stop()
        await operator.stop()
        await market.close()
    per_call = paid_seconds / calls
    return {
        "calls": calls,
        "paid_calls_per_s": calls / paid_seconds,
        "paid_ms_per_call": per_call * 1e3,
        "raw_torch_ms_per_call": raw * 1e3,
        "overhead_ms_per_call": (per_call - raw) * 1e3,
        "claim_gas": claim_gas,
        "settlement_gas_per_call": claim_gas / calls,
        "erc20_transfer_gas_per_call": transfer_gas,
    }


def write_results(table: str, command: str, load: float) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md; other sections are left alone."""
    from _results import write_section  # bench/ is on sys.path when a benchmark runs as a script

    write_section(
        "inference",
        [
            "## Paid inference through one seller (bench/inference.py)",
            "",
            f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}, load average {load:.1f} at start).",
            "Buyer and seller are uAgents agents in one process; each paid call",
            "is a voucher exchange (EIP-712 signature checked, stored in SQLite) plus the inference request (a batch",
            "of 4 on the two-tower recommender, output commitment computed). Baseline: the raw torch forward pass.",
            "Goals: >= 200 paid calls/s, <= 5 ms overhead per call.",
            "",
            table,
        ],
    )


def main() -> None:
    """Measure and print the figures as a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    logging.basicConfig(level=logging.WARNING)
    for name in ("ape", "uagents", "web3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, local_chain(accounts=2) as chain:
        figures = asyncio.run(measure(chain, args.calls, Path(tmp)))
    rows = ["| measure | value |", "|---|---:|"]
    for key, value in figures.items():
        rows.append(f"| {key} | {value:,.3f} |" if isinstance(value, float) else f"| {key} | {value:,} |")
    ratio = figures["erc20_transfer_gas_per_call"] / figures["settlement_gas_per_call"]
    rows += ["", f"Settlement through one claim is {ratio:,.0f}x cheaper per call than an ERC-20 transfer per call."]
    table = "\n".join(rows)
    print(table)
    if not args.no_write:
        write_results(table, "python bench/inference.py " + " ".join(sys.argv[1:]), load)


if __name__ == "__main__":
    main()
