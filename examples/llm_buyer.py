"""An LLM-driven buyer that cannot overspend: a scripted (offline) chat model shops for inference through
tools, on a fresh local chain, under a mandate its owner signed. The model tries a purchase beyond the
mandate; the channel payer refuses it before anything is signed.

Run: .venv/bin/python examples/llm_buyer.py [--out DIR]
Swap the script for a real model with `agents.roles.assistant.build(..., model=ChatOllama(...))`.
"""

import argparse
import tempfile
from pathlib import Path

from agents.roles.assistant import ScriptStep
from marketplace.sim.economy import run_economy
from marketplace.sim.scenario import load_scenario, parse_scenario

SCRIPT = [  # what the model "says", turn by turn: tool calls, then its answer
    ScriptStep(tool="search_sellers", args={"kind": "classifier"}),
    ScriptStep(tool="buy_inference", args={"kind": "classifier", "calls": 3, "max_per_call": 12 * 10**15}),
    ScriptStep(tool="buy_inference", args={"kind": "classifier", "calls": 50, "max_per_call": 10**18}),
    ScriptStep(answer="Bought 3 calls; the rest was refused by my mandate."),
]


def main() -> None:
    """Run the `assistant` scenario with this script and print the model's tool calls and its spend."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="keep the chain's work folder here")
    args = parser.parse_args()
    base = load_scenario(Path("assistant"))
    markets = {name: section.model_dump() for name, section in base.markets.items()}
    markets["assistants"]["script"] = [step.model_dump() for step in SCRIPT]
    scenario = parse_scenario({"name": "llm-buyer", "seed": base.seed, "markets": markets}, "llm_buyer.py")
    with tempfile.TemporaryDirectory() as work:
        report = run_economy(scenario, args.out or Path(work))
    run = report.markets["assistants"]["assistant-1"]
    for call in run["calls"]:
        print(f"{'ok     ' if call['ok'] else 'refused'} {call['tool']}: {call['result'].splitlines()[0]}")
    print(f"spent {run['spent']} of a {run['budget']} mandate; conservation_ok={report.conservation_ok}")


if __name__ == "__main__":
    main()
