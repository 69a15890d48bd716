"""The claim relay: sends users' conversion claims on chain in batches from its own account.

A claim sent by the user's own account would name the user to everyone reading the chain, and a fresh payee
has no gas; so users hand their proofs to a relay that is neither advertiser nor merchant. The relay cannot
redirect a payout (the payee is a public input of the proof) nor forge one (the verifier checks the proof); it
can only delay or drop a claim, which the user then hands to another relay.

Who sends what, and what it costs this agent:
- `ClaimRelay`: anyone, at most MAX_CLAIMS claims. Nothing is queued unless every claim in the message passes:
  formats, then chain reads (campaign live with budget, root published, nullifier unused), then an off-chain
  Groth16 verification in the relay's prover worker (~15 ms each). So the relay spends gas only on claims that
  verify; a claim burned meanwhile by someone else is skipped by `claimMany` at the cost of its calldata.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel
from uagents import Context, Model

from agents.base import AgoraAgent
from agents.capabilities.ads.common import ADDRESS, DECIMAL, LazyProver, field_element, live_campaign
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.settlement import Settlement
from agents.state import Record, Repository, key
from marketplace.chain import ContractRevert
from marketplace.chain.ads import AdCampaignsClient, ConversionClaim
from marketplace.zk import Proof, address_to_field
from protocols import ads
from protocols.ads import MAX_CLAIMS, ClaimRelay, ClaimsQueued, RelayedClaim
from protocols.errors import ErrorCode

BATCH = 8
"""Claims per claimMany transaction."""
WORD = 1 << 256


class Queued(Record):
    """A verified claim waiting for the next batch."""

    claim: dict[str, object]


class RelayReport(BaseModel):
    """What one `relay` sent: claims paid, claims skipped (burned before), claims dropped (reverted), gas used."""

    paid: int
    skipped: int
    dropped: int
    transactions: int
    gas: int


class ClaimRelayer(Capability):
    """The relay's capability (see module docstring)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.ads = AdCampaignsClient(settlement.conn)
        self.queue = Repository(agent.store, "ads.queued", Queued)
        self.prover = LazyProver()

    def handlers(self) -> Iterable[Handlers]:
        """ClaimRelay, in the relay role of the ads protocol."""
        table: dict[type[Model], Handler] = {ClaimRelay: self._on_claims}
        return (Handlers(ads.SPEC, "relay", table),)

    async def _on_claims(self, ctx: Context, sender: str, msg: ClaimRelay) -> None:
        if not 1 <= len(msg.claims) <= MAX_CLAIMS:
            raise Rejected(ErrorCode.MALFORMED, f"a relay message carries 1..{MAX_CLAIMS} claims")
        parsed = [to_claim(c) for c in msg.claims]
        nullifiers = [key(c.campaign_id, c.nullifier) for c in parsed]
        if len(set(nullifiers)) != len(nullifiers):
            raise Rejected(ErrorCode.MALFORMED, "a nullifier appears twice")
        entries = zip(nullifiers, parsed, msg.claims, strict=True)
        fresh = [(k, claim, wire) for k, claim, wire in entries if self.queue.get(k) is None]
        now = await self.settlement.chain_time()
        for _, claim, _ in fresh:
            await self._check_on_chain(claim, now)
        prover = await self.prover.get()
        for _, claim, _ in fresh:
            if not await prover.verify(claim.proof):
                raise Rejected(ErrorCode.REJECTED, f"the proof of nullifier {claim.nullifier} does not verify")
        for k, _, wire in fresh:
            self.queue.add(k, Queued(claim=wire.dict()))
        await ctx.send(sender, ClaimsQueued(nullifiers=[str(c.nullifier) for c in parsed]))

    async def _check_on_chain(self, claim: ConversionClaim, now: int) -> None:
        campaign = await live_campaign(self.ads, claim.campaign_id, now)
        if campaign.escrowed < campaign.payout:
            raise Rejected(ErrorCode.REJECTED, f"campaign {claim.campaign_id} has no budget left")
        if not await self.ads.is_root_published(claim.campaign_id, claim.root):
            raise Rejected(ErrorCode.REJECTED, "the root is not published for this campaign")
        if await self.ads.is_nullifier_used(claim.campaign_id, claim.nullifier):
            raise Rejected(ErrorCode.REPLAYED, f"nullifier {claim.nullifier} is already burned")

    async def relay(self) -> RelayReport:
        """Send every queued claim in batches of BATCH; a batch that reverts is retried claim by claim."""
        queued = list(self.queue.items())
        paid = skipped = dropped = transactions = gas = 0
        for start in range(0, len(queued), BATCH):
            batch = queued[start : start + BATCH]
            claims = [to_claim(RelayedClaim.parse_obj(q.claim)) for _, q in batch]
            try:
                result = await self.ads.claim_many(claims)
                paid, skipped = paid + len(result.claimed), skipped + len(result.skipped)
            except ContractRevert:
                for claim in claims:
                    try:
                        await self.ads.claim(claim)
                        paid += 1
                    except ContractRevert:
                        dropped += 1
                    transactions += 1
                    gas += self._last_gas()
            transactions += 1
            gas += self._last_gas()
            for k, _ in batch:
                self.queue.delete(k)
        await self.prover.stop()
        return RelayReport(paid=paid, skipped=skipped, dropped=dropped, transactions=transactions, gas=gas)

    def _last_gas(self) -> int:
        receipt = self.ads.last_receipt
        return int(receipt["gasUsed"]) if receipt is not None else 0


def to_claim(claim: RelayedClaim) -> ConversionClaim:
    """The on-chain claim a wire claim makes; MALFORMED when a field is out of range."""
    root = field_element(claim.root, "root")
    nullifier = field_element(claim.nullifier, "nullifier", nonzero=False)
    if not ADDRESS.match(claim.payee) or int(claim.payee, 16) == 0:
        raise Rejected(ErrorCode.MALFORMED, "payee is not a non-zero address")
    if len(claim.proof) != 8 or not all(DECIMAL.match(w) and int(w) < WORD for w in claim.proof):
        raise Rejected(ErrorCode.MALFORMED, "a proof is 8 words")
    if claim.campaign_id <= 0:
        raise Rejected(ErrorCode.MALFORMED, "campaign ids start at 1")
    w = [int(x) for x in claim.proof]
    signals = (root, nullifier, claim.campaign_id, address_to_field(claim.payee))
    # The wire carries the words as AdCampaigns takes them (each G2 pair swapped); snarkjs wants them unswapped.
    proof = Proof(a=(w[0], w[1]), b=((w[3], w[2]), (w[5], w[4])), c=(w[6], w[7]), public_signals=signals)
    return ConversionClaim.from_proof(proof)
