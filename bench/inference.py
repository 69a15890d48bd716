"""Paid inference throughput: calls/s through one seller, overhead per call vs raw torch, settlement gas per call.

Each paid call is two request/response exchanges between uAgents agents in one process (Bureau style):
an EIP-712 voucher for the cumulative amount (signature checked, stored durably), then the inference
request (credit checked, model run, commitment computed). The baseline is the same model's raw forward
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

from agents.base import AgentDeps
from agents.clock import SimulatedClock
from agents.roles.buyer import BuyerAgent, BuyerLimits
from agents.roles.market import Market, rows_to_inputs
from agents.roles.model_seller import ModelSellerAgent, SellerTerms, ServedModel
from agents.settings import AgentSettings
from agents.wallet import Wallet
from marketplace.blobstore import BlobStore
from marketplace.chain import LocalChain, TokenClient, local_chain, sign_voucher
from marketplace.chain import Voucher as ChainVoucher
from marketplace.chain.node import rpc_call
from marketplace.ml import ensure_deterministic, train_base_model
from marketplace.ml.inference import time_raw_inference
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec
from protocols.payment import ChannelOpened, Receipt, Voucher

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION_START, SECTION_END = "<!-- inference:start -->", "<!-- inference:end -->"
AGT = 10**18
PRICE = 10**16
ROWS = [[3.0, 17.0], [3.0, 99.0], [3.0, 512.0], [3.0, 700.0]]


async def measure(chain: LocalChain, calls: int, workdir: Path) -> dict[str, float]:
    """Run `calls` paid calls and one claim; return the figures."""
    async with chain.connect() as conn:
        agents = {}
        markets = {}
        for name in ("seller", "buyer"):
            wallet = Wallet.from_seed(f"bench:{name}")
            rpc_call(chain.rpc_url, "anvil_setBalance", [wallet.eth_address, hex(10**20)])
            markets[name] = Market(conn.with_account(wallet.account), BlobStore(workdir / "blobs"))
            settings = AgentSettings(name=name, seed=f"bench:{name}", data_dir=workdir / name)
            deps = AgentDeps(wallet=wallet, clock=SimulatedClock())
            agents[name] = (
                ModelSellerAgent(settings, deps, markets[name], SellerTerms(training_price=AGT, training_floor=AGT))
                if name == "seller"
                else BuyerAgent(settings, deps)
            )
        seller, buyer = agents["seller"], agents["buyer"]
        assert isinstance(seller, ModelSellerAgent)
        logging.getLogger("seller").setLevel(logging.WARNING)
        logging.getLogger("buyer").setLevel(logging.WARNING)
        await TokenClient(conn).transfer(markets["buyer"].account, 10 * AGT)
        ensure_deterministic()
        model, _ = train_base_model("recommender", seed=1)
        served = ServedModel("rec-bench", "recommender", model, PRICE, PRICE)
        await seller.start()
        await buyer.start()
        try:
            await seller.publish_model(served)
            deal = await buyer.negotiate(
                [seller.address],
                JobSpec(kind="inference", model_id="recommender", units=calls),
                limits=BuyerLimits(PRICE * calls, PRICE * calls),
            )
            assert deal is not None
            bm = markets["buyer"]
            deposit = PRICE * calls
            expiry = await bm.chain_time() + 3600
            await bm.token.approve(bm.channels.address, deposit)
            opened = await bm.channels.open_channel(markets["seller"].account, deposit, expiry, served.chain_id)
            nonce = (await bm.channels.get_channel(opened.channel_id)).nonce
            await buyer.request(
                seller.address,
                ChannelOpened(
                    channel_id=str(opened.channel_id),
                    chain_id=1337,
                    contract=bm.channels.address,
                    payer=bm.account,
                    payee=markets["seller"].account,
                    deposit=deposit,
                    expiry=expiry,
                ),
                Receipt,
            )
            started = time.perf_counter()
            for i in range(calls):
                cumulative = (i + 1) * PRICE
                signed = sign_voucher(
                    bm.conn.account, ChainVoucher(opened.channel_id, nonce, cumulative), bm.channels.domain
                )
                job = f"bench-{i}"
                await buyer.request(
                    seller.address,
                    Voucher(
                        channel_id=str(opened.channel_id),
                        cumulative_amount=cumulative,
                        nonce=nonce,
                        signature="0x" + signed.signature.hex(),
                        job_id=job,
                    ),
                    Receipt,
                )
                await buyer.request(
                    seller.address,
                    InferenceRequest(job_id=job, model_id="rec-bench", inputs=ROWS, price=PRICE),
                    InferenceResult,
                )
            paid_seconds = time.perf_counter() - started
            raw = statistics.median(time_raw_inference(model, rows_to_inputs(model.spec, ROWS), 200) for _ in range(5))
            claims = await seller.claim_vouchers()
            receipt = seller.market.channels.last_receipt
            assert receipt is not None
            assert claims[0].amount == PRICE * calls
            transfer_gas = 0
            for _ in range(3):
                transfer = await TokenClient(bm.conn).transfer(markets["seller"].account, 1)
                transfer_gas = int(transfer["gasUsed"])
        finally:
            await buyer.stop()
            await seller.stop()
    per_call = paid_seconds / calls
    return {
        "calls": calls,
        "paid_calls_per_s": calls / paid_seconds,
        "paid_ms_per_call": per_call * 1e3,
        "raw_torch_ms_per_call": raw * 1e3,
        "overhead_ms_per_call": (per_call - raw) * 1e3,
        "claim_gas": int(receipt["gasUsed"]),
        "settlement_gas_per_call": int(receipt["gasUsed"]) / calls,
        "erc20_transfer_gas_per_call": transfer_gas,
    }


def write_results(table: str, command: str, load: float) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md; other sections are left alone."""
    section = "\n".join(
        [
            SECTION_START,
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
            SECTION_END,
        ]
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach benchmark owns one section.\n"
    if SECTION_START in text:
        head, _, rest = text.partition(SECTION_START)
        text = head + section + rest.partition(SECTION_END)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


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
