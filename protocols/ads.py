"""Ad market messages: creatives bound to on-chain campaigns, conversion commitments, root notices, relayed claims.

An advertiser escrows a campaign in AdCampaigns whose `creativeHash` is `creative_hash(creative)`, and pushes the
`CreativeAnnounce` to users; a user checks the hash against the chain, so whoever forwards it cannot change it.
Users rank creatives on their own device; nothing about the ranking leaves them. On a purchase (a token
payment to the campaign's merchant account) a user hands the merchant only a `ConversionCommitment`:
Poseidon(secret, campaignId, salt), the payment's transaction and the payer's signature binding the two. The
merchant publishes a Merkle root of the campaign's commitments on chain and sends every buyer of the campaign
the same `RootNotice` (root and all leaves), from which each rebuilds its own path. A user proves membership
(Groth16) to a fresh payee and hands the proof to a claim relay (`ClaimRelay`), which is neither advertiser nor
merchant; the relay sends the batch on chain from its own account and cannot redirect it (payee is a public
input of the proof).

Field elements (commitments, roots, nullifiers, proof words) cross the wire as decimal strings; byte strings as
0x-hex; targeting weights as integers in millionths.
"""

from __future__ import annotations

import json

from eth_utils.crypto import keccak
from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model

TARGETING_DIM = 32
"""Length of a creative's targeting embedding (the item-embedding width of the two-tower recommender)."""
MAX_ITEMS = 16
"""Most catalogue items one creative may feature."""
MAX_LEAVES = 1_024
"""Most commitments one RootNotice may carry (a user rebuilds the tree from them: depth × leaves hashes)."""
MAX_CLAIMS = 16
"""Most claims one ClaimRelay may carry (the relay verifies each proof before queueing it)."""


class Creative(Model):
    """What an ad shows and whom it targets: its hash is the campaign's on-chain `creativeHash`.

    `merchant` is the agent address of the shop that takes conversion commitments (its settlement account is
    the campaign's merchant on chain); `price` is what one purchase pays that account (base units); `targeting`
    is the advertiser's audience embedding in millionths, `items` the catalogue items it features.
    """

    headline: str
    items: list[int]
    targeting: list[int]
    merchant: str
    price: int


class CreativeAnnounce(Model):
    """An advertiser (or anyone forwarding it) announces `creative` of AdCampaigns campaign `campaign_id`."""

    campaign_id: int
    creative: Creative


class CreativeReceived(Model):
    """The user checked the creative against the chain and keeps it for local ranking."""

    campaign_id: int


class ConversionCommitment(Model):
    """A purchase's conversion commitment, handed to the campaign's merchant.

    `payment_tx` is the transaction that paid the merchant account `creative.price`; `signature` is the paying
    account's EIP-191 signature of `purchase_text(...)`, so a commitment rides only on a payment its payer made.
    """

    campaign_id: int
    commitment: str
    payment_tx: str
    signature: str


class CommitmentAccepted(Model):
    """The merchant holds the commitment; it will be in the campaign's next root."""

    campaign_id: int
    commitment: str


class RootNotice(Model):
    """The merchant published `root` for the campaign on chain: the tree of `leaves` (commitments, in order)."""

    campaign_id: int
    root: str
    leaves: list[str]


class RootReceived(Model):
    """The user checked the root against the chain and the leaves."""

    campaign_id: int
    root: str


class RelayedClaim(Model):
    """One conversion to claim: the proof's public inputs (root, nullifier, campaign, payee) and its 8 words."""

    campaign_id: int
    root: str
    nullifier: str
    payee: str
    proof: list[str]


class ClaimRelay(Model):
    """Claims for a relay to send on chain in its next batch."""

    claims: list[RelayedClaim]


class ClaimsQueued(Model):
    """The relay verified these claims (by nullifier) and will send them in its next batch."""

    nullifiers: list[str]


def creative_hash(creative: Creative) -> bytes:
    """keccak256 of the creative's canonical JSON: the campaign's on-chain `creativeHash`."""
    body = json.dumps(creative.dict(), sort_keys=True, separators=(",", ":"))
    return bytes(keccak(text=body))


def purchase_text(campaign_id: int, commitment: str, payment_tx: str, merchant: str) -> str:
    """What a payer signs: this payment buys the right to one commitment in this campaign at this merchant."""
    return f"agora-ads purchase: campaign {campaign_id}, commitment {commitment}, payment {payment_tx}, to {merchant}"


SPEC = ProtocolSpecification(
    name="agora-ads",
    version="1.0.0",
    interactions={
        CreativeAnnounce: {CreativeReceived, ErrorReply},
        ConversionCommitment: {CommitmentAccepted, ErrorReply},
        RootNotice: {RootReceived, ErrorReply},
        ClaimRelay: {ClaimsQueued, ErrorReply},
        CreativeReceived: set(),
        CommitmentAccepted: set(),
        RootReceived: set(),
        ClaimsQueued: set(),
    },
    roles={
        "viewer": {CreativeAnnounce, RootNotice},
        "merchant": {ConversionCommitment},
        "relay": {ClaimRelay},
    },
)
"""Roles: viewers (users) take creatives and root notices; merchants take commitments; relays take claims."""
