"""Blobs by reference: a content id, its size, the agent that holds it and that agent's grant to one peer.

Datasets, model weights and federated updates are far larger than a message. They stay in their owner's
store; a message carries a `BlobRef` instead, and the named peer fetches the bytes from the owner's HTTP
endpoint with a request it signs (agents/blobs.py), then checks size and hash before using them.
"""

from __future__ import annotations

import hashlib

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model

GRANT_DOMAIN = "agora:blob-grant:v1"
FETCH_DOMAIN = "agora:blob-fetch:v1"


class BlobGrant(Model):
    """Owner `owner` lets agent `peer` read blob `blob_id` (`size` bytes) until `expires` (unix seconds).

    Signed by the owner's agent key over `grant_digest`; the owner also keeps the grant in its own store,
    so it can revoke it, and serves the blob only to a fetch signed by `peer` naming `grant_id`.
    """

    grant_id: str
    blob_id: str
    size: int
    owner: str
    peer: str
    expires: int
    signature: str


class BlobRef(Model):
    """A blob held by its owner, readable by the grant's peer: what messages carry instead of bytes."""

    blob_id: str
    size: int
    owner: str
    grant: BlobGrant


class GrantRequest(Model):
    """A staked validator asks a seller for read access to a model artifact it must re-execute or grade.

    `signature` is the EIP-191 signature of `grant_request_text(...)` by the validator's settlement
    `account`, binding the request to the agent that sent it, so the seller can check the account on chain.
    """

    blob_id: str
    account: str
    expires: int
    signature: str


def grant_digest(grant: BlobGrant) -> bytes:
    """The 32 bytes an owner signs to issue `grant` (every field but the signature, in a fixed order)."""
    fields = (GRANT_DOMAIN, grant.grant_id, grant.blob_id, str(grant.size), grant.owner, grant.peer, str(grant.expires))
    return hashlib.sha256("\n".join(fields).encode()).digest()


def fetch_digest(owner: str, blob_id: str, grant_id: str, offset: int, expires: int, nonce: str) -> bytes:
    """The 32 bytes a peer signs to read blob `blob_id` of `owner` from byte `offset` under grant `grant_id`."""
    fields = (FETCH_DOMAIN, owner, blob_id, grant_id, str(offset), str(expires), nonce)
    return hashlib.sha256("\n".join(fields).encode()).digest()


def grant_request_text(blob_id: str, agent: str, expires: int) -> str:
    """What a validator's account signs to ask for `blob_id` on behalf of its agent `agent`."""
    return f"agora-blob-grant-request:{blob_id}:{agent}:{expires}"


SPEC = ProtocolSpecification(
    name="agora-blobs",
    version="1.0.0",
    interactions={GrantRequest: {BlobRef, ErrorReply}, BlobRef: set()},
    roles={"owner": {GrantRequest}, "reader": {BlobRef}},
)
"""Roles: owners grant read access to blobs they hold; readers receive references."""
