"""Gas per paid inference call: 100 calls settled through one channel claim vs one ERC-20 transfer per call.

Run: `.venv/bin/python bench/gas.py` (prints the tables); `--write` also refreshes the gas section of
bench/RESULTS.md. Starts its own anvil, deploys agora with Ape, measures, and stops the node.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marketplace.chain import LocalChain, local_chain  # noqa: E402
from marketplace.chain.gas import amortized_per_call, hot_paths, prepare  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- gas:begin -->", "<!-- gas:end -->"
LABELS = {
    "erc20_transfer_per_call": "ERC-20 transfer per call (baseline)",
    "channel_cold_open_plus_claim_per_call": "channel: first channel on a fresh deployment, open + claim",
    "channel_open_plus_claim_per_call": "channel: open + one claim of 100 calls",
    "channel_claim_only_per_call": "channel: claim only (channel already open)",
    "channel_3_level_lineage_per_call": "channel: open + claim, model with 3-level lineage",
    "claim_many_10_channels_per_call": "claimMany: 10 channels x 100 calls, opens included",
}


async def measure(chain: LocalChain, calls: int) -> tuple[dict[str, float], dict[str, int]]:
    """Amortized figures and the hot-path table, each from the same funded starting state."""
    async with chain.connect() as conn:
        snapshot = chain.snapshot()
        cast = await prepare(conn, chain)
        amortized = await amortized_per_call(cast, calls)
        chain.revert(snapshot)
        conn.reset_nonce()  # the revert rewound every account's nonce; prepare() makes fresh signers
        cast = await prepare(conn, chain)
        paths = await hot_paths(cast)
    return amortized, paths


def render(amortized: dict[str, float], paths: dict[str, int], calls: int) -> str:
    """Markdown tables of both measurements."""
    baseline = amortized["erc20_transfer_per_call"]
    lines = [
        f"Paid inference calls at 0.001 AGT each, {calls} calls per channel (anvil 1.7.1, solc 0.8.28, cancun).",
        "",
        "| settlement | gas per call | vs baseline |",
        "|---|---:|---:|",
    ]
    for key, label in LABELS.items():
        lines.append(f"| {label} | {amortized[key]:,.0f} | {amortized[key] / baseline:.1%} |")
    lines += ["", "| hot path (contracts/gas-snapshot.json) | gasUsed |", "|---|---:|"]
    lines += [f"| {name} | {gas:,} |" for name, gas in sorted(paths.items())]
    return "\n".join(lines)


def write_section(body: str) -> None:
    """Replace (or append) this benchmark's section of bench/RESULTS.md; other sections stay."""
    command = "Command: `.venv/bin/python bench/gas.py --write`"
    section = f"{BEGIN}\n## Gas per paid inference call (bench/gas.py)\n\n{command}\n\n{body}\n{END}"
    text = RESULTS.read_text() if RESULTS.exists() else "# agora benchmark results\n"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> None:
    """Measure and print; with --write, refresh bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="update the gas section of bench/RESULTS.md")
    args = parser.parse_args()
    with local_chain(accounts=8) as chain:
        amortized, paths = asyncio.run(measure(chain, args.calls))
    body = render(amortized, paths, args.calls)
    print(body)
    if args.write:
        write_section(body)


if __name__ == "__main__":
    main()
