"""Typed client for AdCampaigns: escrowed ad budgets paid per conversion proven in zero knowledge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from marketplace.chain.base import ContractClient
from marketplace.zk.prover import Proof

ZERO_HASH = b"\x00" * 32
CLAIM_GAS = 450_000
"""Gas limit sent with each claim: the verifier returns false (the claim reverts InvalidProof) when the
pairing runs short of gas, so estimation cannot be trusted; a claim to a fresh payee uses ~360k."""
CLAIM_MANY_GAS_PER_CLAIM = 340_000
"""Gas limit per claim of a claimMany batch (plus CLAIM_MANY_GAS_BASE). A batch verifies its proofs together and uses
~145k per claim at 8 claims; the limit also covers the fallback that verifies each proof alone to name a bad one."""
CLAIM_MANY_GAS_BASE = 100_000


@dataclass(frozen=True)
class CampaignTerms:
    """What an advertiser fixes when creating a campaign (amounts in token base units, time in unix seconds)."""

    merchant: str
    """Publishes the roots of conversion commitments."""
    publisher: str
    """Receives `publisher_bps` of each payout (may be the zero address when the share is zero)."""
    budget: int
    payout: int
    """Paid per conversion, publisher share included."""
    publisher_bps: int
    end: int
    """Roots and claims are accepted while the block time is before it; refunds from it on."""
    creative_hash: bytes = ZERO_HASH

    def as_tuple(self) -> tuple[str, str, int, int, int, int, bytes]:
        """The ABI tuple of the Solidity CampaignTerms struct."""
        return (
            self.merchant,
            self.publisher,
            self.budget,
            self.payout,
            self.publisher_bps,
            self.end,
            self.creative_hash,
        )


@dataclass(frozen=True)
class Campaign:
    """A campaign as stored on chain."""

    campaign_id: int
    advertiser: str
    merchant: str
    publisher: str
    end: int
    publisher_bps: int
    payout: int
    budget: int
    spent: int
    refunded: int
    creative_hash: bytes

    @property
    def escrowed(self) -> int:
        """What the contract still holds for this campaign."""
        return self.budget - self.spent - self.refunded

    @property
    def conversions(self) -> int:
        """Conversions paid so far."""
        return self.spent // self.payout


@dataclass(frozen=True)
class ConversionClaim:
    """One conversion to claim: the proof's public inputs and the proof."""

    campaign_id: int
    root: int
    nullifier: int
    payee: str
    proof: Proof

    @classmethod
    def from_proof(cls, proof: Proof) -> ConversionClaim:
        """The claim a proof makes (public signals: root, nullifier, campaignId, payee)."""
        root, nullifier, campaign_id, payee = proof.public_signals
        return cls(campaign_id, root, nullifier, str(to_checksum_address(payee.to_bytes(20, "big"))), proof)

    def as_tuple(self, checksum: str) -> tuple[int, int, int, str, list[int]]:
        """The ABI tuple of the Solidity ConversionClaim struct (payee given checksummed)."""
        return (self.campaign_id, self.root, self.nullifier, checksum, list(self.proof.packed()))


@dataclass(frozen=True)
class CampaignCreated:
    """A CampaignCreated event: the budget is escrowed."""

    campaign_id: int
    advertiser: str
    merchant: str
    publisher: str
    budget: int
    payout: int
    publisher_bps: int
    end: int
    creative_hash: bytes


@dataclass(frozen=True)
class RootPublished:
    """A RootPublished event: the merchant's root of conversion commitments."""

    campaign_id: int
    root: int


@dataclass(frozen=True)
class ConversionClaimed:
    """A ConversionClaimed event: one conversion paid."""

    campaign_id: int
    nullifier: int
    payee: str
    user_amount: int
    publisher_amount: int


@dataclass(frozen=True)
class ConversionSkipped:
    """A ClaimSkipped event: a claimMany entry whose nullifier was burned before."""

    campaign_id: int
    nullifier: int


@dataclass(frozen=True)
class ConversionBatch:
    """What one claimMany settled."""

    claimed: tuple[ConversionClaimed, ...]
    skipped: tuple[ConversionSkipped, ...]

    @property
    def amount(self) -> int:
        """Total paid by the batch (users and publishers)."""
        return sum(c.user_amount + c.publisher_amount for c in self.claimed)


@dataclass(frozen=True)
class CampaignRefunded:
    """A CampaignRefunded event: unspent budget back to the advertiser."""

    campaign_id: int
    advertiser: str
    amount: int


class AdCampaignsClient(ContractClient):
    """AdCampaigns seen from one signer (advertiser, merchant, or a user/relayer sending claims)."""

    contract_name = "AdCampaigns"

    async def create_campaign(self, terms: CampaignTerms) -> CampaignCreated:
        """Escrow the budget of a new campaign with this signer as advertiser (needs a token allowance)."""
        checksummed = CampaignTerms(
            self._cs(terms.merchant),
            self._cs(terms.publisher),
            terms.budget,
            terms.payout,
            terms.publisher_bps,
            terms.end,
            terms.creative_hash,
        )
        receipt = await self._send(self.contract.functions.createCampaign(checksummed.as_tuple()))
        return self._one(receipt, "CampaignCreated", _created)

    async def publish_root(self, campaign_id: int, root: int) -> RootPublished:
        """Publish a root of conversion commitments (the campaign's merchant, before the end)."""
        receipt = await self._send(self.contract.functions.publishRoot(campaign_id, root))
        return self._one(receipt, "RootPublished", lambda a: RootPublished(a["campaignId"], a["root"]))

    async def claim(self, claim: ConversionClaim, gas: int = CLAIM_GAS) -> ConversionClaimed:
        """Prove one conversion and pay its payee (anyone may send it), with an explicit gas limit."""
        fn = self.contract.functions.claim(
            claim.campaign_id, claim.root, claim.nullifier, self._cs(claim.payee), list(claim.proof.packed())
        )
        return self._one(await self._send(fn, gas=gas), "ConversionClaimed", _claimed)

    async def claim_many(self, claims: Sequence[ConversionClaim], gas: int | None = None) -> ConversionBatch:
        """Several conversions in one transaction; burned nullifiers are skipped, any other fault reverts all."""
        limit = gas if gas is not None else CLAIM_MANY_GAS_BASE + CLAIM_MANY_GAS_PER_CLAIM * len(claims)
        fn = self.contract.functions.claimMany([c.as_tuple(self._cs(c.payee)) for c in claims])
        receipt = await self._send(fn, gas=limit)
        skipped = self._decode(receipt, "ClaimSkipped", lambda a: ConversionSkipped(a["campaignId"], a["nullifier"]))
        return ConversionBatch(tuple(self._decode(receipt, "ConversionClaimed", _claimed)), tuple(skipped))

    async def refund(self, campaign_id: int) -> CampaignRefunded:
        """Take back the unspent budget (advertiser, from the end on)."""
        receipt = await self._send(self.contract.functions.refund(campaign_id))
        return self._one(
            receipt,
            "CampaignRefunded",
            lambda a: CampaignRefunded(a["campaignId"], str(a["advertiser"]), a["amount"]),
        )

    async def get_campaign(self, campaign_id: int) -> Campaign:
        """A campaign by id."""
        raw = await self.conn.call(self.contract.functions.getCampaign(campaign_id))
        advertiser, end, bps, merchant, payout, publisher, budget, spent, refunded, creative = raw
        return Campaign(
            campaign_id,
            str(advertiser),
            str(merchant),
            str(publisher),
            end,
            bps,
            payout,
            budget,
            spent,
            refunded,
            bytes(creative),
        )

    async def campaign_count(self) -> int:
        """Number of campaigns created (the highest id)."""
        count: int = await self.conn.call(self.contract.functions.campaignCount())
        return count

    async def is_root_published(self, campaign_id: int, root: int) -> bool:
        """Whether the campaign's merchant published `root`."""
        published: bool = await self.conn.call(self.contract.functions.isRootPublished(campaign_id, root))
        return published

    async def is_nullifier_used(self, campaign_id: int, nullifier: int) -> bool:
        """Whether the conversion with this nullifier was paid."""
        used: bool = await self.conn.call(self.contract.functions.isNullifierUsed(campaign_id, nullifier))
        return used

    async def conversions_of(self, campaign_ids: Sequence[int], from_block: int = 0) -> list[ConversionClaimed]:
        """Every ConversionClaimed event of these campaigns (public: anyone reading the chain sees them)."""
        wanted = set(campaign_ids)
        logs = await self.contract.events.ConversionClaimed.get_logs(from_block=from_block)
        return [_claimed(dict(log["args"])) for log in logs if log["args"]["campaignId"] in wanted]

    async def remaining_budget(self, campaign_id: int) -> int:
        """Budget not yet paid out or refunded."""
        value: int = await self.conn.call(self.contract.functions.remainingBudget(campaign_id))
        return value


def _created(args: dict[str, Any]) -> CampaignCreated:
    return CampaignCreated(
        args["campaignId"],
        str(args["advertiser"]),
        str(args["merchant"]),
        str(args["publisher"]),
        args["budget"],
        args["payout"],
        args["publisherBps"],
        args["end"],
        bytes(args["creativeHash"]),
    )


def _claimed(args: dict[str, Any]) -> ConversionClaimed:
    return ConversionClaimed(
        args["campaignId"], args["nullifier"], str(args["payee"]), args["userAmount"], args["publisherAmount"]
    )
