"""Chain layer: local node, Ape deployment, manifest, and typed async contract clients."""

from marketplace.chain.agent_registry import AgentRecord, AgentRegistryClient, AgentRole, Reputation
from marketplace.chain.base import ContractClient, MissingEvent
from marketplace.chain.channels import Channel, ChannelClaimed, ChannelOpened, ChannelRefunded, ChannelsClient
from marketplace.chain.client import ChainConnection, ChainError, ContractRevert, GasMeter, TransactionFailed
from marketplace.chain.deploy import DeployError, DeploySettings, StakingConfig, deploy
from marketplace.chain.escrow import EscrowClient, Job, JobSpec, JobStatus
from marketplace.chain.local import LocalChain, dev_account, local_chain
from marketplace.chain.manifest import Deployment
from marketplace.chain.models import Lineage, ModelInfo, ModelRegistryClient, ModelSpec, Payout
from marketplace.chain.node import AnvilNode, NodeError
from marketplace.chain.staking import Dispute, StakeInfo, StakingClient
from marketplace.chain.token import TokenClient
from marketplace.chain.vouchers import (
    SignedVoucher,
    Voucher,
    VoucherDomain,
    recover_voucher_signer,
    sign_voucher,
    verify_voucher,
    voucher_digest,
)

__all__ = [
    "AgentRecord",
    "AgentRegistryClient",
    "AgentRole",
    "AnvilNode",
    "ChainConnection",
    "ChainError",
    "Channel",
    "ChannelClaimed",
    "ChannelOpened",
    "ChannelRefunded",
    "ChannelsClient",
    "ContractClient",
    "ContractRevert",
    "DeployError",
    "DeploySettings",
    "Deployment",
    "Dispute",
    "EscrowClient",
    "GasMeter",
    "Job",
    "JobSpec",
    "JobStatus",
    "Lineage",
    "LocalChain",
    "MissingEvent",
    "ModelInfo",
    "ModelRegistryClient",
    "ModelSpec",
    "NodeError",
    "Payout",
    "Reputation",
    "SignedVoucher",
    "StakeInfo",
    "StakingClient",
    "StakingConfig",
    "TokenClient",
    "TransactionFailed",
    "Voucher",
    "VoucherDomain",
    "deploy",
    "dev_account",
    "local_chain",
    "recover_voucher_signer",
    "sign_voucher",
    "verify_voucher",
    "voucher_digest",
]
