"""Chain layer: local node, Ape deployment, manifest, and typed async contract clients."""

from marketplace.chain.client import ChainConnection, ChainError, ContractRevert, TransactionFailed
from marketplace.chain.deploy import DeployError, DeploySettings, deploy
from marketplace.chain.local import LocalChain, dev_account, local_chain
from marketplace.chain.manifest import Deployment
from marketplace.chain.node import AnvilNode, NodeError
from marketplace.chain.token import TokenClient

__all__ = [
    "AnvilNode",
    "ChainConnection",
    "ChainError",
    "ContractRevert",
    "DeployError",
    "DeploySettings",
    "Deployment",
    "LocalChain",
    "NodeError",
    "TokenClient",
    "TransactionFailed",
    "deploy",
    "dev_account",
    "local_chain",
]
