"""A throwaway local economy chain: anvil + the deployed contract set, for tests, demos and the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain.client import ChainConnection
from marketplace.chain.deploy import DeploySettings, deploy
from marketplace.chain.manifest import Deployment
from marketplace.chain.node import DEFAULT_MNEMONIC, AnvilNode, rpc_call

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int, mnemonic: str = DEFAULT_MNEMONIC) -> LocalAccount:
    """The index-th funded dev account of anvil's (and Ape's) default mnemonic."""
    account: LocalAccount = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
    return account


@dataclass
class LocalChain:
    """A running local node with agora deployed on it."""

    rpc_url: str
    deployment: Deployment
    accounts: list[LocalAccount] = field(default_factory=list)

    @property
    def treasury(self) -> LocalAccount:
        """The deployer, which holds the whole token supply at start."""
        return self.accounts[0]

    def connect(self, account: LocalAccount | None = None) -> ChainConnection:
        """A fresh async connection signing as account (default: the treasury)."""
        return ChainConnection.connect(self.deployment, account or self.treasury, self.rpc_url)

    def snapshot(self) -> str:
        """Take an EVM snapshot; revert() to it to undo everything after."""
        return str(rpc_call(self.rpc_url, "evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """Roll the chain back to a snapshot (which is consumed)."""
        if rpc_call(self.rpc_url, "evm_revert", [snapshot_id]) is not True:
            raise RuntimeError(f"evm_revert({snapshot_id}) failed")

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block (for expiry paths).

        The next block is stamped `seconds` after the latest one; this also holds when anvil runs with a fixed
        block-time interval (`genesis_time`), where `evm_increaseTime` alone would be ignored.
        """
        latest = rpc_call(self.rpc_url, "eth_getBlockByNumber", ["latest", False])
        assert isinstance(latest, dict)
        rpc_call(self.rpc_url, "evm_setNextBlockTimestamp", [int(str(latest["timestamp"]), 16) + seconds])
        rpc_call(self.rpc_url, "evm_mine")

    def mine(self, blocks: int = 1) -> None:
        """Mine empty blocks (e.g. so a dispute's seed block exists, or falls out of the last 256)."""
        rpc_call(self.rpc_url, "anvil_mine", [hex(blocks)])


@contextmanager
def local_chain(
    accounts: int = 10, port: int | None = None, genesis_time: int | None = None, host: str = "127.0.0.1"
) -> Iterator[LocalChain]:
    """Start a fresh anvil (listening on `host`), deploy agora with Ape, yield it, and stop the node on exit.

    With `genesis_time`, block times (and so block hashes) depend only on the transactions, not the wall clock.
    """
    with AnvilNode(port=port, accounts=max(accounts, 2), genesis_time=genesis_time, host=host) as node:
        deployment = deploy(DeploySettings(rpc_url=node.rpc_url))
        yield LocalChain(node.rpc_url, deployment, [dev_account(i) for i in range(accounts)])
