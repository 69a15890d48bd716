"""Compile and deploy agora's contracts with Ape, and write the deployment manifest."""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import chdir, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketplace.chain.ape_env import configure_ape_environment
from marketplace.chain.manifest import ABI, DeployedContract, Deployment, abi_id
from marketplace.paths import project_root

if TYPE_CHECKING:
    from ape.api import AccountAPI, ProviderAPI

LOCAL_NETWORK = "ethereum:local:node"
DEFAULT_TOKEN_SUPPLY = 1_000_000_000 * 10**18
"""One billion AGT in base units, minted once to the treasury."""


class DeployError(RuntimeError):
    """Deployment could not proceed; the message says what to change."""


@dataclass(frozen=True)
class StakingConfig:
    """ValidatorStaking tunables fixed at deployment (seconds and basis points)."""

    min_stake: int = 100 * 10**18
    unbonding_period: int = 7 * 24 * 3600
    attestation_window: int = 2 * 24 * 3600
    """How long after an attestation a dispute may open against it (longer than dispute_window, so a
    second challenger may still dispute once a first dispute has resolved)."""
    dispute_window: int = 24 * 3600
    """How long a dispute's committee may vote; attestation_window + dispute_window must be shorter
    than unbonding_period, so everyone involved stays slashable until resolution."""
    slash_bps: int = 1_000
    treasury_bps: int = 2_000
    committee_size: int = 3
    """Validators drawn (stake-weighted, by a future blockhash) to decide each dispute."""

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int]:
        """The constructor's Config struct, field by field."""
        return (
            self.min_stake,
            self.unbonding_period,
            self.attestation_window,
            self.dispute_window,
            self.slash_bps,
            self.treasury_bps,
            self.committee_size,
        )


@dataclass(frozen=True)
class ChannelsConfig:
    """PaymentChannels tunables fixed at deployment (seconds)."""

    min_channel_duration: int = 1_800
    """Shortest time from opening a channel to its expiry: a recipient always has this long to claim."""


@dataclass(frozen=True)
class EscrowConfig:
    """JobEscrow tunables fixed at deployment (seconds)."""

    evaluation_window: int = 24 * 3600
    """After a submission, how long the client cannot expire the job (the evaluator's time to judge)."""


@dataclass(frozen=True)
class FederatedConfig:
    """FederatedRewards tunables fixed at deployment (seconds)."""

    min_claim_window: int = 24 * 3600
    """Shortest claim window a job may set: contributors always have this long after the deadline (the last
    possible root) to claim their rewards."""


@dataclass(frozen=True)
class DeploySettings:
    """Where and as whom to deploy."""

    network: str = LOCAL_NETWORK
    rpc_url: str | None = None
    account: str | None = None
    """Ape account alias; None uses Ape's first test account (local chains only)."""
    treasury: str | None = None
    """Receives the token supply and protocol fees; defaults to the deployer."""
    token_supply: int = DEFAULT_TOKEN_SUPPLY


@dataclass
class DeployContext:
    """What each deploy step sees: the deployer, the compiled project and what is already deployed."""

    deployer: AccountAPI
    project: Any
    treasury: str
    settings: DeploySettings
    deployed: dict[str, Any]


DeployStep = Callable[[DeployContext], Any]
"""Deploys one contract and returns the Ape ContractInstance."""


def _deploy_token(ctx: DeployContext) -> Any:
    return ctx.deployer.deploy(ctx.project.AgoraToken, ctx.treasury, ctx.settings.token_supply)


STAKING_CONFIG = StakingConfig()
"""ValidatorStaking tunables used by `agora chain up` and local_chain()."""
CHANNELS_CONFIG = ChannelsConfig()
"""PaymentChannels tunables used by `agora chain up` and local_chain()."""
ESCROW_CONFIG = EscrowConfig()
"""JobEscrow tunables used by `agora chain up` and local_chain()."""
FEDERATED_CONFIG = FederatedConfig()
"""FederatedRewards tunables used by `agora chain up` and local_chain()."""


def _deploy_agent_registry(ctx: DeployContext) -> Any:
    return ctx.deployer.deploy(ctx.project.AgentRegistry, ctx.deployer.address)


def _deploy_model_registry(ctx: DeployContext) -> Any:
    return ctx.deployer.deploy(ctx.project.ModelRegistry)


def _deploy_staking(ctx: DeployContext) -> Any:
    return ctx.deployer.deploy(
        ctx.project.ValidatorStaking, ctx.deployed["AgoraToken"].address, ctx.treasury, STAKING_CONFIG.as_tuple()
    )


def _deploy_escrow(ctx: DeployContext) -> Any:
    escrow = ctx.deployer.deploy(
        ctx.project.JobEscrow,
        ctx.deployed["AgoraToken"].address,
        ctx.deployed["ModelRegistry"].address,
        ctx.deployed["AgentRegistry"].address,
        ctx.deployed["ValidatorStaking"].address,
        ESCROW_CONFIG.evaluation_window,
    )
    # Reputation is receipt-backed: only settlement contracts may write it (fixed by _freeze_recorders).
    ctx.deployed["AgentRegistry"].addRecorder(escrow.address, sender=ctx.deployer)
    return escrow


def _deploy_channels(ctx: DeployContext) -> Any:
    channels = ctx.deployer.deploy(
        ctx.project.PaymentChannels,
        ctx.deployed["AgoraToken"].address,
        ctx.deployed["ModelRegistry"].address,
        ctx.deployed["AgentRegistry"].address,
        CHANNELS_CONFIG.min_channel_duration,
    )
    ctx.deployed["AgentRegistry"].addRecorder(channels.address, sender=ctx.deployer)
    return channels


def _deploy_federated(ctx: DeployContext) -> Any:
    return ctx.deployer.deploy(
        ctx.project.FederatedRewards,
        ctx.deployed["AgoraToken"].address,
        ctx.deployed["ValidatorStaking"].address,
        FEDERATED_CONFIG.min_claim_window,
    )


def _deploy_verifier(ctx: DeployContext) -> Any:
    # Generated by `python -m marketplace.zk.build` from the conversion circuit's verifying key.
    return ctx.deployer.deploy(ctx.project.Groth16Verifier)


def _deploy_ads(ctx: DeployContext) -> Any:
    return ctx.deployer.deploy(
        ctx.project.AdCampaigns, ctx.deployed["AgoraToken"].address, ctx.deployed["Groth16Verifier"].address
    )


DEPLOY_PLAN: list[tuple[str, DeployStep]] = [
    ("AgoraToken", _deploy_token),
    ("AgentRegistry", _deploy_agent_registry),
    ("ModelRegistry", _deploy_model_registry),
    ("ValidatorStaking", _deploy_staking),
    ("JobEscrow", _deploy_escrow),
    ("PaymentChannels", _deploy_channels),
    ("FederatedRewards", _deploy_federated),
    ("Groth16Verifier", _deploy_verifier),
    ("AdCampaigns", _deploy_ads),
]
"""Contracts in dependency order; later steps read earlier addresses from ctx.deployed."""

RECORDERS = ("JobEscrow", "PaymentChannels")
"""The settlement contracts AgentRegistry lets write reputation: fixed for good at the end of deployment."""


def _freeze_recorders(ctx: DeployContext) -> None:
    """Fix AgentRegistry's recorders to exactly RECORDERS; the deployer gives up its ownership in the same call.

    Until this runs nothing can record; afterwards no key can add a recorder (docs/security.md, operator keys).
    """
    registry = ctx.deployed["AgentRegistry"]
    expected = [ctx.deployed[name].address for name in RECORDERS]
    if list(registry.recorders()) != expected:
        raise DeployError(f"AgentRegistry recorders are {list(registry.recorders())}, expected {expected}")
    registry.freezeRecorders(sender=ctx.deployer)


@contextmanager
def ape_connection(settings: DeploySettings) -> Iterator[ProviderAPI]:
    """Connect Ape to the network named in settings (a local anvil when rpc_url is given)."""
    configure_ape_environment()
    import ape
    from ape.exceptions import ApeException, NetworkError

    provider_settings = {"uri": settings.rpc_url} if settings.rpc_url else {}
    try:
        choice = ape.networks.parse_network_choice(settings.network, provider_settings=provider_settings)
    except NetworkError as exc:
        first_line = str(exc).splitlines()[0].rstrip(". ")
        raise DeployError(
            f"unknown network {settings.network!r} ({first_line}); `ape networks list` shows the choices"
        ) from exc
    if settings.account is None and not settings.network.startswith("ethereum:local"):
        raise DeployError(f"--account (an Ape account alias) is required to deploy to {settings.network}")
    try:
        provider = choice.__enter__()
    except ApeException as exc:
        raise DeployError(f"cannot connect to {settings.network}: {str(exc).splitlines()[0]}") from exc
    try:
        yield provider
    finally:
        choice.__exit__(None, None, None)


def _deployer(settings: DeploySettings) -> AccountAPI:
    import ape

    if settings.account is None:
        return ape.accounts.test_accounts[0]
    try:
        account = ape.accounts.load(settings.account)
    except Exception as exc:  # Ape raises several types for a missing alias
        raise DeployError(f"no Ape account named {settings.account!r}: {exc}") from exc
    _unlock_for_plan(account)
    return account


def _unlock_for_plan(account: AccountAPI) -> None:
    """Unlock a keystore account once so it signs the whole plan unattended.

    The passphrase comes from `APE_ACCOUNTS_<alias>_PASSPHRASE`, else from one prompt at a terminal; with neither,
    or a wrong one, this refuses before any transaction is sent. Other account types keep their own confirmation.
    """
    from ape.exceptions import AccountsError
    from ape_accounts import KeyfileAccount

    if not isinstance(account, KeyfileAccount):
        return
    variable = f"APE_ACCOUNTS_{account.alias}_PASSPHRASE"
    if not os.environ.get(variable) and not (sys.stdin is not None and sys.stdin.isatty()):
        raise DeployError(f"account {account.alias!r} is locked: set {variable} (no terminal to ask for it)")
    try:
        account.set_autosign(True)
    except AccountsError as exc:
        raise DeployError(f"cannot unlock account {account.alias!r}: {exc}") from exc


def deploy(settings: DeploySettings) -> Deployment:
    """Deploy the whole contract set and return its manifest (not yet saved)."""
    # Ape's node provider probes an IPC path first, and web3 leaks that socket when the probe
    # fails; collect it here, quietly, instead of letting a ResourceWarning surface later.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return _deploy(settings)
        finally:
            gc.collect()


def _compiled_project() -> Any:
    """The checkout's Ape project, compiled with the checkout as working directory: its import remappings are
    relative to it, so a deploy started from another directory (an Ape project naming the network) compiles too."""
    import ape

    root = project_root()
    with chdir(root):
        project = ape.Project(root)
        project.load_contracts()
    return project


def _deploy(settings: DeploySettings) -> Deployment:
    with ape_connection(settings) as provider:
        import ape

        deployer = _deployer(settings)  # a locked account is refused before compiling
        project = _compiled_project()
        ctx = DeployContext(deployer, project, settings.treasury or deployer.address, settings, {})
        records: dict[str, DeployedContract] = {}
        abis: dict[str, ABI] = {}
        for name, step in DEPLOY_PLAN:
            instance = step(ctx)
            ctx.deployed[name] = instance
            abi: ABI = [entry.model_dump(mode="json", by_alias=True) for entry in instance.contract_type.abi]
            receipt = provider.get_receipt(instance.txn_hash)
            records[name] = DeployedContract(
                address=instance.address, abi_id=abi_id(abi), block=receipt.block_number, tx_hash=instance.txn_hash
            )
            abis[abi_id(abi)] = abi
        _freeze_recorders(ctx)
        return Deployment(
            chain_id=provider.chain_id,
            network=settings.network,
            rpc_url=settings.rpc_url or getattr(provider, "uri", ""),
            deployer=deployer.address,
            treasury=ctx.treasury,
            block=ape.chain.blocks.head.number or 0,
            contracts=records,
            abis=abis,
        )
