"""One agent's handles on the shared economy: its signing chain clients, registry client, model directory.

A `Settlement` is built from plain settings (RPC URL, deployment manifest path, registry URL)
plus the agent's wallet, so a role can be constructed the same way in any process or on any host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct
from eth_keys.exceptions import BadSignature

from agents.wallet import Wallet
from marketplace.chain import (
    ChainConnection,
    ChannelsClient,
    Deployment,
    EscrowClient,
    FederatedRewardsClient,
    ModelRegistryClient,
    StakingClient,
    TokenClient,
)
from marketplace.ml import ModelKind, ModelSpec, default_spec
from marketplace.ml.zoo import MODEL_KINDS
from marketplace.registry.client import RegistryClient
from marketplace.registry.models import AgentEntry
from protocols.validation import Attestation

MODEL_URI_PREFIX = "agora://model/"
"""ModelRegistry token URIs of agora models: agora://model/<kind>/<model id>."""

MILLIONTHS = 1_000_000
"""Scores and metrics cross the wire and the chain as integers in millionths."""


@dataclass(frozen=True)
class SettlementSettings:
    """Where the economy lives, as plain values that cross process boundaries: chain, manifest, registry."""

    rpc_url: str
    manifest: Path
    registry_url: str | None = None

    def connect(self, wallet: Wallet) -> Settlement:
        """This agent's handles, signing with its wallet's account."""
        conn = ChainConnection.connect(Deployment.load(self.manifest), wallet.account, self.rpc_url)
        registry = RegistryClient(self.registry_url, wallet.identity) if self.registry_url else None
        return Settlement(conn, registry)


@dataclass
class Settlement:
    """One agent's signing chain connection and the registry, with typed contract clients."""

    conn: ChainConnection
    registry: RegistryClient | None = None
    models: ModelDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.models = ModelDirectory(self.model_registry)

    @cached_property
    def token(self) -> TokenClient:
        """AgoraToken as this agent."""
        return TokenClient(self.conn)

    @cached_property
    def channels(self) -> ChannelsClient:
        """PaymentChannels as this agent."""
        return ChannelsClient(self.conn)

    @cached_property
    def escrow(self) -> EscrowClient:
        """JobEscrow as this agent."""
        return EscrowClient(self.conn)

    @cached_property
    def federated(self) -> FederatedRewardsClient:
        """FederatedRewards as this agent."""
        return FederatedRewardsClient(self.conn)

    @cached_property
    def model_registry(self) -> ModelRegistryClient:
        """ModelRegistry as this agent."""
        return ModelRegistryClient(self.conn)

    @cached_property
    def staking(self) -> StakingClient:
        """ValidatorStaking as this agent."""
        return StakingClient(self.conn)

    @property
    def account(self) -> str:
        """This agent's settlement address."""
        return self.conn.address

    def require_registry(self) -> RegistryClient:
        """The registry client; a clear error when this agent was built without one."""
        if self.registry is None:
            raise RuntimeError("this agent was built without a registry URL")
        return self.registry

    async def ranked_validators(self, seed: bytes, exclude: set[str]) -> list[AgentEntry]:
        """Registered validators in ValidatorStaking's stake-weighted order for `seed`, minus `exclude` accounts.

        Sellers stake too (a slashable bond), so the on-chain order is filtered to agents whose registry
        card says they are validators. A card chooses the owner it names, so a staker may come with several
        candidate cards (at most 4, in registry order): only the one whose verdicts the staker's account signs
        is its agent (`attestation_signer`).
        """
        by_owner: dict[str, list[AgentEntry]] = {}
        async for entry in self.cards("validator"):
            candidates = by_owner.setdefault(entry.card.owner.lower(), [])
            if len(candidates) < 4:
                candidates.append(entry)
        stakers = await self.staking.validators()
        ranked = await self.staking.select_validators(seed, len(stakers)) if stakers else []
        skip = {account.lower() for account in exclude}
        return [entry for a in ranked if a.lower() not in skip for entry in by_owner.get(a.lower(), [])]

    async def cards(self, role: str | None = None, job_kind: str | None = None) -> AsyncIterator[AgentEntry]:
        """Every registry entry (with `role` and offering `job_kind`, when given), in registry order (cheapest
        first), paging through all of them."""
        offset: int | None = 0
        while offset is not None:
            page = await self.require_registry().search(role=role, job_kind=job_kind, limit=100, offset=offset)
            for entry in page.results:
                yield entry
            offset = page.next_offset

    async def registered(self, role: str) -> list[str]:
        """Addresses of every agent whose registry card has `role`."""
        return [entry.card.address async for entry in self.cards(role)]

    async def agents_of(self, accounts: set[str], role: str | None = None) -> dict[str, list[str]]:
        """Settlement account (lower-case) → agent addresses whose registry cards name it, paging through all.

        Cards choose their owner: a caller that needs the real agent of an account sends to every candidate
        and lets the chain decide (only the account itself can act on chain as it).
        """
        wanted = {a.lower() for a in accounts}
        found: dict[str, list[str]] = {a: [] for a in wanted}
        async for entry in self.cards(role):
            owner = entry.card.owner.lower()
            if owner in wanted and len(found[owner]) < 4:
                found[owner].append(entry.card.address)
        return found

    def attestation(self, job_id: str, valid: bool, commitment: str) -> Attestation:
        """A signed Attestation of a recomputed commitment by this agent's settlement account."""
        signature: bytes = Account.sign_message(
            _attestation_message(job_id, valid, commitment), self.conn.account.key
        ).signature
        return Attestation(
            job_id=job_id,
            validator=self.account,
            valid=valid,
            recomputed_commitment=commitment,
            signature="0x" + signature.hex(),
        )

    async def chain_time(self) -> int:
        """Timestamp of the latest block: the clock every on-chain deadline is measured against."""
        block = await self.conn.w3.eth.get_block("latest")
        return int(block["timestamp"])

    async def close(self) -> None:
        """Close the registry client and the chain connection."""
        if self.registry is not None:
            await self.registry.close()
        await self.conn.close()


def _attestation_message(job_id: str, valid: bool, commitment: str) -> SignableMessage:
    return encode_defunct(text=f"agora-attestation:{job_id}:{int(valid)}:{commitment}")


def attestation_signer(attestation: Attestation) -> str | None:
    """The account that signed an attestation's verdict (checksummed), or None when the signature is malformed."""
    message = _attestation_message(attestation.job_id, attestation.valid, attestation.recomputed_commitment)
    try:
        return str(Account.recover_message(message, signature=attestation.signature))
    except (ValueError, TypeError, BadSignature):
        return None


@dataclass(frozen=True)
class ListedModel:
    """A model as ModelRegistry lists it."""

    chain_id: int
    model_id: str
    kind: ModelKind
    content_hash: str
    creator: str


class ModelDirectory:
    """Agora model ids ↔ ModelRegistry token ids, read from the chain (token URIs) and cached.

    Anyone can register any URI, so a model id alone names nothing: look a model up together with the
    account that serves it (its creator), as a seller's card and a channel's recipient say.
    """

    def __init__(self, registry: ModelRegistryClient) -> None:
        self._registry = registry
        self._by_id: dict[str, list[ListedModel]] = {}
        self._seen = 0

    async def refresh(self) -> None:
        """Read models registered since the last refresh."""
        count = await self._registry.model_count()
        for chain_id in range(self._seen + 1, count + 1):
            uri = await self._registry.token_uri(chain_id)
            if not uri.startswith(MODEL_URI_PREFIX):
                continue
            kind, _, model_id = uri.removeprefix(MODEL_URI_PREFIX).partition("/")
            if kind not in MODEL_KINDS:
                continue
            info = await self._registry.model_of(chain_id)
            listed = ListedModel(chain_id, model_id, kind, "0x" + info.content_hash.hex(), info.creator)
            self._by_id.setdefault(model_id, []).append(listed)
        self._seen = count

    def _find(self, model_id: str, creator: str | None) -> ListedModel | None:
        listed = self._by_id.get(model_id, [])
        if creator is not None:
            listed = [m for m in listed if m.creator.lower() == creator.lower()]
        return listed[0] if listed else None

    async def get(self, model_id: str, creator: str | None = None) -> ListedModel:
        """The listed model with this id (registered by `creator` when given, else the first registered); KeyError
        when the chain does not know it."""
        found = self._find(model_id, creator)
        if found is None:
            await self.refresh()
            found = self._find(model_id, creator)
        if found is None:
            by = f" by {creator}" if creator else ""
            raise KeyError(f"model {model_id!r} is not registered on chain{by}")
        return found


def model_uri(kind: ModelKind, model_id: str) -> str:
    """The ModelRegistry token URI for an agora model."""
    return f"{MODEL_URI_PREFIX}{kind}/{model_id}"


def to_bytes32(hex_digest: str) -> bytes:
    """A 0x-prefixed 32-byte hex digest as bytes."""
    raw = bytes.fromhex(hex_digest.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"not a 32-byte digest: {hex_digest!r}")
    return raw


def kind_spec(kind: ModelKind) -> ModelSpec:
    """The standard spec of a model kind (every agora model of a kind shares its input shape)."""
    return default_spec(kind)
