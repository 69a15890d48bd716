"""Conversion commitments and the conversion circuit's inputs (contracts/circuits/conversion.circom)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from marketplace.zk.merkle import MerkleProof
from marketplace.zk.poseidon import FIELD, poseidon

PUBLIC_INPUTS = ("root", "nullifier", "campaignId", "payee")
"""The circuit's public signals, in the order the verifier (and AdCampaigns.claim) takes them."""


def random_field_element() -> int:
    """A uniformly random field element from the OS's CSPRNG."""
    return secrets.randbelow(FIELD)


@dataclass(frozen=True)
class ConversionSecret:
    """What a user keeps after a purchase: the secret and salt behind its commitment for one campaign."""

    campaign_id: int
    secret: int
    salt: int

    @classmethod
    def new(cls, campaign_id: int) -> ConversionSecret:
        """Fresh secret and salt for a conversion in `campaign_id`."""
        return cls(campaign_id, random_field_element(), random_field_element())

    @property
    def commitment(self) -> int:
        """The Merkle leaf handed to the merchant: Poseidon(secret, campaignId, salt)."""
        return poseidon((self.secret, self.campaign_id, self.salt))

    @property
    def nullifier(self) -> int:
        """Burned on chain when claimed: Poseidon(secret, campaignId)."""
        return poseidon((self.secret, self.campaign_id))


def address_to_field(address: str) -> int:
    """A 20-byte address as the circuit's payee signal."""
    return int(address, 16)


def circuit_inputs(conversion: ConversionSecret, proof: MerkleProof, payee: str) -> dict[str, object]:
    """The witness input JSON for the conversion circuit (decimal strings, as snarkjs expects)."""
    if proof.leaf != conversion.commitment:
        raise ValueError("the Merkle proof is not for this conversion's commitment")
    return {
        "root": str(proof.root),
        "nullifier": str(conversion.nullifier),
        "campaignId": str(conversion.campaign_id),
        "payee": str(address_to_field(payee)),
        "secret": str(conversion.secret),
        "salt": str(conversion.salt),
        "siblings": [str(s) for s in proof.siblings],
        "pathBits": [str(b) for b in proof.path_bits],
    }
