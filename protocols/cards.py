"""What the marketplace registry stores: AgentCard, Offering, and the signed write that binds a card to its agent.

A write is the card (or just the address) plus a nonce, a timestamp and the id of the registry it is for,
signed by the agent's uAgents identity key over the sha256 digest of canonical JSON. The registry checks the
signature against the `agent1…` address itself, so only the holder of that key can publish, change or remove
its card, and refuses writes signed for another registry, so one registry cannot replay them to another.
Fields are plain types (str, int, lists) so a uAgents (pydantic v1) mirror can carry them unchanged.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from uagents_core.identity import Identity

from protocols import signatures
from protocols.signatures import SignatureError

ROLE_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"
"""A role name: lower-case slug. Roles come from installed markets (user, seller, validator, advertiser, ...)."""
Role = Annotated[str, Field(pattern=ROLE_PATTERN)]
WriteAction = Literal["register", "update", "heartbeat", "deregister"]

AGENT_ADDRESS_PATTERN = r"^agent1[02-9ac-hj-np-z]{59}$"
"""A bech32 `agent1…` address: the compressed secp256k1 public key of the agent's identity."""
ETH_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
ENDPOINT_PATTERN = r"^https?://[!-~]{1,250}$"
"""A URL in printable ASCII (what HTTP carries; other characters are percent-encoded). An ASCII class reads the
same in Python's `re` and in JSON Schema's ECMA regexes; a "not whitespace" class did not (U+0085 is
whitespace only to Python)."""
DIGEST_PATTERN = r"^(proto:)?[0-9a-f]{64}$"
NONCE_PATTERN = r"^[0-9a-f]{16,64}$"
SIGNATURE_PATTERN = r"^sig1[02-9ac-hj-np-z]{40,200}$"
REGISTRY_ID_PATTERN = SLUG_PATTERN
"""A registry's id: a slug or its public URL, e.g. `https://registry.example.org`."""
WRITE_DOMAIN = "agora.registry.v2"
MAX_UINT256 = 2**256 - 1


def _integral(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer; accept such floats only while they are exact (< 2**53).
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_integral)]
"""An int that also accepts an exactly integral JSON number such as 2.0 (never a string or bool)."""
Endpoint = Annotated[str, Field(pattern=ENDPOINT_PATTERN, max_length=256)]
ProtocolDigest = Annotated[str, Field(pattern=DIGEST_PATTERN)]


class Offering(BaseModel):
    """One thing an agent sells: a job kind on a model at a price per unit, with how much it can take on."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    model_id: str = Field(pattern=SLUG_PATTERN, description="Model identifier, e.g. `two-tower-v1`.")
    job_kind: str = Field(pattern=SLUG_PATTERN, description="Job kind, e.g. `inference` or `training`.")
    price_per_unit: WholeNumber = Field(ge=0, le=MAX_UINT256, description="Price per unit in AGT base units.")
    unit: str = Field(default="call", pattern=SLUG_PATTERN, description="What one unit is: `call`, `epoch`, ….")
    capacity: WholeNumber = Field(default=1, ge=0, le=2**31 - 1, description="Units the agent accepts concurrently.")


class AgentCard(BaseModel):
    """An agent's public profile: who it is, where to reach it, what it speaks and what it sells."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    address: str = Field(pattern=AGENT_ADDRESS_PATTERN, description="uAgents address (`agent1…`).")
    role: Role
    name: str = Field(default="", max_length=64, description="Human-readable name for dashboards.")
    endpoints: list[Endpoint] = Field(default_factory=list, max_length=8, description="uAgents HTTP endpoints.")
    protocols: list[ProtocolDigest] = Field(default_factory=list, max_length=32, description="Protocol digests.")
    offerings: list[Offering] = Field(default_factory=list, max_length=32)
    owner: str = Field(pattern=ETH_ADDRESS_PATTERN, description="Ethereum account paid for, and rated on, this work.")


class SignedWrite(BaseModel):
    """A registry write: action + address (+ card) + nonce + timestamp + registry, signed by the agent's key."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    action: WriteAction
    address: str = Field(pattern=AGENT_ADDRESS_PATTERN)
    card: AgentCard | None = Field(default=None, description="Required for register and update; absent otherwise.")
    nonce: str = Field(pattern=NONCE_PATTERN, description="Fresh random hex; the registry refuses a repeat.")
    timestamp: WholeNumber = Field(
        ge=0, le=2**40, description="Unix seconds when signed; must be near the registry's clock."
    )
    registry: str = Field(
        pattern=REGISTRY_ID_PATTERN,
        description="Id of the registry this write is for (`registry_id` of GET /v1/health); others refuse it.",
    )
    signature: str = Field(
        pattern=SIGNATURE_PATTERN, description="uAgents `sig1…` signature over write_digest() by `address`."
    )

    @model_validator(mode="after")
    def _check_card(self) -> SignedWrite:
        if self.action in ("register", "update"):
            if self.card is None:
                raise ValueError(f"{self.action} needs a card")
        elif self.card is not None:
            raise ValueError(f"{self.action} carries no card")
        return self

    def card_matches(self) -> bool:
        """Whether the card (if any) is the signer's own: a key may only publish its own address."""
        return self.card is None or self.card.address == self.address

    def digest(self) -> bytes:
        """The sha256 digest this write's signature covers."""
        return write_digest(self.action, self.address, self.card, self.nonce, self.timestamp, self.registry)

    def signature_valid(self) -> bool:
        """Whether `signature` is `address`'s signature over digest() (never raises)."""
        return verify_digest(self.address, self.digest(), self.signature)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, ASCII only (what signatures cover)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def write_digest(action: str, address: str, card: AgentCard | None, nonce: str, timestamp: int, registry: str) -> bytes:
    """sha256 of the canonical JSON of a write's signed fields, the registry it is for included."""
    payload = {
        "domain": WRITE_DOMAIN,
        "registry": registry,
        "action": action,
        "address": address,
        "card": None if card is None else card.model_dump(mode="json"),
        "nonce": nonce,
        "timestamp": timestamp,
    }
    return hashlib.sha256(canonical_json(payload)).digest()


def verify_digest(address: str, digest: bytes, signature: str) -> bool:
    """Check a uAgents signature over a digest (in libsecp256k1); malformed input counts as invalid."""
    try:
        signatures.verify_digest(address, signature, digest)
    except SignatureError:
        return False
    return True


def sign_write(
    identity: Identity,
    action: WriteAction,
    card: AgentCard | None = None,
    *,
    registry: str,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> SignedWrite:
    """Build and sign a write for `registry` (its id) as `identity` (a uagents_core Identity)."""
    address: str = identity.address
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    timestamp = timestamp if timestamp is not None else int(time.time())
    digest = write_digest(action, address, card, nonce, timestamp, registry)
    signature: str = identity.sign_digest(digest)
    return SignedWrite(
        action=action,
        address=address,
        card=card,
        nonce=nonce,
        timestamp=timestamp,
        registry=registry,
        signature=signature,
    )
