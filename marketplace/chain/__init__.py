"""Chain layer: local node, Ape deployment, manifest, and typed async contract clients."""

from marketplace.chain.agent_registry import AgentRecord, AgentRegistryClient, AgentRole, Reputation
from marketplace.chain.base import ContractClient, MissingEvent
from marketplace.chain.channels import (
    Channel,
    ChannelClaimed,
    ChannelOpened,
    ChannelRefunded,
    ChannelsClient,
    ClaimBatch,
    ClaimSkipped,
    SkipReason,
)
from marketplace.chain.client import ChainConnection, ChainError, ContractRevert, GasMeter, TransactionFailed
from marketplace.chain.deploy import ChannelsConfig, DeployError, DeploySettings, EscrowConfig, StakingConfig, deploy
from marketplace.chain.escrow import EscrowClient, EscrowTerms, Job, JobStatus
from marketplace.chain.local import LocalChain, dev_account, local_chain
from marketplace.chain.manifest import Deployment
from marketplace.chain.models import Lineage, ModelInfo, ModelListing, ModelRegistryClient, Payout
from marketplace.chain.node import AnvilNode, NodeError
from marketplace.chain.staking import (
    AttestationInfo,
    Ballot,
    Committee,
    CommitteeSeat,
    Dispute,
    DisputeResolved,
    StakeInfo,
    StakingClient,
)
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
    "AttestationInfo",
    "Ballot",
    "ChainConnection",
    "ChainError",
    "Channel",
    "ChannelClaimed",
    "ChannelOpened",
    "ChannelRefunded",
    "ChannelsClient",
    "ChannelsConfig",
    "ClaimBatch",
    "ClaimSkipped",
    "Committee",
    "CommitteeSeat",
    "ContractClient",
    "ContractRevert",
    "DeployError",
    "DeploySettings",
    "Deployment",
    "Dispute",
    "DisputeResolved",
    "EscrowClient",
    "EscrowConfig",
    "EscrowTerms",
    "GasMeter",
    "Job",
    "JobStatus",
    "Lineage",
    "LocalChain",
    "MissingEvent",
    "ModelInfo",
    "ModelListing",
    "ModelRegistryClient",
    "NodeError",
    "Payout",
    "Reputation",
    "SignedVoucher",
    "SkipReason",
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
