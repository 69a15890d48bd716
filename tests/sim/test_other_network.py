"""Another network end to end: `agora chain up --network ethereum:sepolia:node --account deployer` on a second anvil
that is Sepolia by its chain id, deploying with an Ape keystore account, then a scenario on that deployment."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain.local import LocalChain, dev_account
from marketplace.chain.manifest import Deployment
from marketplace.chain.node import AnvilNode, rpc_call
from marketplace.sim.deployed import DeployedChainError, deployed_chain, keystore_account, run_deployed_economy
from marketplace.sim.economy import CLOCK_START
from marketplace.sim.scenario import load_scenario

pytestmark = [pytest.mark.chain, pytest.mark.slow, pytest.mark.e2e]

SEPOLIA = 11155111
ALIAS = "deployer"
NETWORK = "ethereum:sepolia:node"
AGORA = [sys.executable, "-m", "marketplace.cli"]
SCENARIO = """\
name: other-network
seed: 3
markets:
  inference:
    sellers:
      - name: seller-a
        models: [{id: rec, kind: recommender, price_per_call: 20000000000000000, reserve_price: 10000000000000000}]
    users: 2
    validators: 3
"""


def ape_config(rpc_url: str) -> str:
    """An Ape project config naming the node as Sepolia's; anvil mines only on transactions, so no confirmations."""
    return (
        f"node:\n  ethereum:\n    sepolia:\n      uri: {rpc_url}\n"
        "ethereum:\n  sepolia:\n    required_confirmations: 0\n"
    )


@dataclass
class OtherNetwork:
    """The second node, the Ape project that names it, the keystore deployer and the `chain up` that ran."""

    node: AnvilNode
    home: Path
    project: Path
    deployer: LocalAccount
    passphrase: str
    up: subprocess.CompletedProcess[str]

    def chain_up(self, **env: str) -> subprocess.CompletedProcess[str]:
        """`agora chain up --network ethereum:sepolia:node --account deployer`, non-interactive, from the project."""
        environment = {**os.environ, "AGORA_HOME": str(self.home), "CI": "true", "COLUMNS": "200", **env}
        environment.pop("APE_DATA_FOLDER", None)  # Ape's data (the keystore) under AGORA_HOME, not the checkout's
        return subprocess.run(
            [*AGORA, "chain", "up", "--network", NETWORK, "--account", ALIAS],
            cwd=self.project,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    @property
    def manifest(self) -> Path:
        return self.home / "deployments" / f"{SEPOLIA}.json"

    def nonce(self) -> int:
        return int(str(rpc_call(self.node.rpc_url, "eth_getTransactionCount", [self.deployer.address, "latest"])), 16)


def _keystore(home: Path, passphrase: str) -> LocalAccount:
    """A fresh key written as an Ape keystore account, offline, into AGORA_HOME's Ape data folder."""
    account: LocalAccount = Account.create()
    accounts = home / "ape" / "accounts"
    accounts.mkdir(parents=True)
    (accounts / f"{ALIAS}.json").write_text(json.dumps(Account.encrypt(account.key, passphrase)))
    return account


def _fund(node: AnvilNode, address: str) -> None:
    """Send the deployer 10 ETH from anvil's first dev account (a real transfer on that chain)."""
    tx = {"from": dev_account(0).address, "to": address, "value": hex(10 * 10**18)}
    tx_hash = rpc_call(node.rpc_url, "eth_sendTransaction", [tx])
    receipt = None
    for _ in range(300):  # anvil mines at once, but answers the receipt a moment later on a busy machine
        receipt = rpc_call(node.rpc_url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            break
        time.sleep(0.1)
    assert isinstance(receipt, dict)
    assert receipt["status"] == "0x1"


@pytest.fixture(scope="module")
def sepolia(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherNetwork]:
    home = tmp_path_factory.mktemp("home")
    project = tmp_path_factory.mktemp("ape-project")
    passphrase = secrets.token_urlsafe(16)
    deployer = _keystore(home, passphrase)
    # The agents' clock starts at CLOCK_START: the node starts there too, as the local economy's does.
    with AnvilNode(chain_id=SEPOLIA, genesis_time=int(CLOCK_START)) as node:
        _fund(node, deployer.address)
        (project / "ape-config.yaml").write_text(ape_config(node.rpc_url))
        network = OtherNetwork(node, home, project, deployer, passphrase, subprocess.CompletedProcess([], 0))
        network.up = network.chain_up(**{f"APE_ACCOUNTS_{ALIAS}_PASSPHRASE": passphrase})
        yield network


def test_chainUp_deploysOnTheOtherNetworkWithTheKeystoreAccount(sepolia: OtherNetwork) -> None:
    assert sepolia.up.returncode == 0, sepolia.up.stderr
    assert f"agora on chain {SEPOLIA} ({NETWORK})" in sepolia.up.stdout
    deployment = Deployment.load(sepolia.manifest)
    assert deployment.chain_id == SEPOLIA
    assert deployment.network == NETWORK
    assert deployment.rpc_url == sepolia.node.rpc_url
    assert deployment.deployer == deployment.treasury == sepolia.deployer.address
    assert sepolia.nonce() >= len(deployment.contracts), "the keystore account sent the deployment"
    for name, record in deployment.contracts.items():
        code = rpc_call(sepolia.node.rpc_url, "eth_getCode", [record.address, "latest"])
        assert isinstance(code, str)
        assert len(code) > 2, f"{name} has no code"


@pytest.mark.parametrize(
    ("passphrase", "expected"),
    [(None, f"set APE_ACCOUNTS_{ALIAS}_PASSPHRASE"), ("not-the-passphrase", f"cannot unlock account '{ALIAS}'")],
    ids=["none", "wrong"],
)
def test_chainUp_lockedKeystoreAccount_refusedBeforeSending(
    sepolia: OtherNetwork, passphrase: str | None, expected: str
) -> None:
    assert sepolia.up.returncode == 0, sepolia.up.stderr
    before = sepolia.nonce()
    env = {f"APE_ACCOUNTS_{ALIAS}_PASSPHRASE": passphrase} if passphrase else {}
    result = sepolia.chain_up(**env)
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sepolia.nonce() == before, "nothing was sent"


def test_deployedChain_refusesWhatCannotCarryTheScenario(sepolia: OtherNetwork, tmp_path: Path) -> None:
    assert sepolia.up.returncode == 0, sepolia.up.stderr
    treasury = keystore_account(ALIAS, sepolia.passphrase, sepolia.home / "ape")
    with pytest.raises(DeployedChainError, match="cannot decrypt"):
        keystore_account(ALIAS, "not-the-passphrase", sepolia.home / "ape")
    with pytest.raises(DeployedChainError, match="the treasury key is"):
        deployed_chain(sepolia.manifest, Account.create())
    other = Deployment.load(sepolia.manifest).model_copy(update={"chain_id": 1})
    with pytest.raises(DeployedChainError, match=f"is chain {SEPOLIA}, the manifest is for chain 1"):
        deployed_chain(other.save(tmp_path / "other.json"), treasury)
    snapshot = str(rpc_call(sepolia.node.rpc_url, "evm_snapshot"))
    try:
        LocalChain(sepolia.node.rpc_url, Deployment.load(sepolia.manifest)).increase_time(3600)
        with pytest.raises(DeployedChainError, match="past the agents' clock start"):
            deployed_chain(sepolia.manifest, treasury)
    finally:
        assert rpc_call(sepolia.node.rpc_url, "evm_revert", [snapshot]) is True


def test_scenario_runsOnThatDeployment(sepolia: OtherNetwork, tmp_path: Path) -> None:
    assert sepolia.up.returncode == 0, sepolia.up.stderr
    treasury = keystore_account(ALIAS, sepolia.passphrase, sepolia.home / "ape")
    chain = deployed_chain(sepolia.manifest, treasury)
    first = int(str(rpc_call(chain.rpc_url, "eth_blockNumber")), 16) + 1
    scenario_file = tmp_path / "other-network.yaml"
    scenario_file.write_text(SCENARIO)

    report = run_deployed_economy(load_scenario(scenario_file), chain, tmp_path / "out")

    assert report.conservation_ok
    assert report.inference_calls["paid"] >= 2
    assert report.balances["treasury"].address == sepolia.deployer.address
    last = int(str(rpc_call(chain.rpc_url, "eth_blockNumber")), 16)
    chain_ids = set()
    sent = 0
    for number in range(first, last + 1):
        block = rpc_call(chain.rpc_url, "eth_getBlockByNumber", [hex(number), True])
        assert isinstance(block, dict)
        for tx in block["transactions"]:
            chain_ids.add(int(tx["chainId"], 16))
            sent += 1
    assert sent >= 10, "the economy's transactions are on this node"
    assert chain_ids == {SEPOLIA}, "every transaction was signed for Sepolia's chain id"
    token = chain.deployment.address("AgoraToken")
    for name in ("user-01", "seller-a"):
        balance = report.balances[name]
        data = "0x70a08231" + balance.address[2:].lower().rjust(64, "0")  # balanceOf(address)
        held = int(str(rpc_call(chain.rpc_url, "eth_call", [{"to": token, "data": data}, "latest"])), 16)
        assert held == balance.after, f"{name}'s reported balance is its balance on chain {SEPOLIA}"
