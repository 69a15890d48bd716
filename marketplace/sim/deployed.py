"""A scenario on an existing deployment: the chain `agora chain up --network ... --account ...` deployed to.

`run_economy` starts a fresh anvil of its own. Here the node and the contracts already exist: the manifest names
them, the node answers at an RPC URL, and the treasury (the deployer's key, from its Ape keystore) holds the token
supply. The economy still funds agents' gas with `anvil_setBalance` and moves time with `evm_setNextBlockTimestamp`,
so the node must be an anvil (any chain id); the agents' simulated clock starts at CLOCK_START, so the node's clock
must be there too (`anvil --timestamp 1700000000`).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from agents.offload import OFFLOAD_ENV
from marketplace.chain import LocalChain
from marketplace.chain.ape_env import configure_ape_environment
from marketplace.chain.manifest import Deployment
from marketplace.chain.node import NodeError, rpc_call
from marketplace.sim.economy import CLOCK_START, Economy, Progress
from marketplace.sim.report import EconomyReport
from marketplace.sim.scenario import Scenario

CLOCK_SLACK = 60
"""How far (s) the node's clock may run ahead of CLOCK_START: the local run's own deployment blocks put it about
fifteen seconds ahead; much more and agents' deadlines fall in the chain's past."""


class DeployedChainError(RuntimeError):
    """The deployment, its node or the treasury key cannot carry a scenario; the message says which and why."""


def keystore_account(alias: str, passphrase: str, data_folder: Path | None = None) -> LocalAccount:
    """The key of Ape keystore account `alias` (<APE_DATA_FOLDER>/accounts/<alias>.json), decrypted."""
    if data_folder is None:
        configure_ape_environment()
        data_folder = Path(os.environ["APE_DATA_FOLDER"])
    path = data_folder / "accounts" / f"{alias}.json"
    try:
        keyfile = json.loads(path.read_text())
        key = Account.decrypt(keyfile, passphrase)
    except FileNotFoundError:
        raise DeployedChainError(f"no Ape account named {alias!r} (no {path})") from None
    except ValueError as exc:
        raise DeployedChainError(f"cannot decrypt Ape account {alias!r}: {exc}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def deployed_chain(manifest: Path, treasury: LocalAccount, rpc_url: str | None = None) -> LocalChain:
    """The LocalChain an Economy runs on, for the deployment in `manifest` (at its RPC URL unless one is given).

    Refuses a node on another chain, a treasury other than the deployment's, a contract without code, and a node
    clock the agents cannot follow; a node behind CLOCK_START is moved up to it.
    """
    deployment = Deployment.load(manifest)
    url = rpc_url or deployment.rpc_url
    try:
        chain_id = int(str(rpc_call(url, "eth_chainId")), 16)
    except NodeError as exc:
        raise DeployedChainError(str(exc)) from None
    if chain_id != deployment.chain_id:
        raise DeployedChainError(f"{url} is chain {chain_id}, the manifest is for chain {deployment.chain_id}")
    if treasury.address.lower() != deployment.treasury.lower():
        raise DeployedChainError(f"the treasury key is {treasury.address}, the deployment's is {deployment.treasury}")
    for name, record in deployment.contracts.items():
        if rpc_call(url, "eth_getCode", [record.address, "latest"]) in ("0x", "0x0"):
            raise DeployedChainError(f"{name} has no code at {record.address} on {url}")
    chain = LocalChain(url, deployment, [treasury])
    _align_clock(chain)
    return chain


def _align_clock(chain: LocalChain) -> None:
    latest = rpc_call(chain.rpc_url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(latest, dict)
    behind = int(CLOCK_START) - int(str(latest["timestamp"]), 16)
    if behind > 0:
        chain.increase_time(behind)
    elif -behind > CLOCK_SLACK:
        raise DeployedChainError(
            f"the node's clock is {-behind} s past the agents' clock start {int(CLOCK_START)}: "
            f"start the node at it (anvil --timestamp {int(CLOCK_START)})"
        )


def run_deployed_economy(
    scenario: Scenario,
    chain: LocalChain,
    workdir: Path,
    progress: Progress | None = None,
    processes: frozenset[str] = frozenset(),
) -> EconomyReport:
    """Run the scenario on a chain from deployed_chain() and return the report; the node is left running."""
    os.environ.setdefault(OFFLOAD_ENV, "thread")  # as run_economy
    return asyncio.run(Economy(scenario, chain, workdir, progress, processes).run())


__all__ = ["DeployedChainError", "deployed_chain", "keystore_account", "run_deployed_economy"]
