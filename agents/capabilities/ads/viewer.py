"""A user's side of the ad market: creatives ranked on the device, purchases that hand the merchant only a
commitment, and claims proven to fresh payees and sent through a relay.

Who sends what, and what it costs this agent:
- `CreativeAnnounce`: anyone (a forwarded announcement is as good as the advertiser's, since the creative must
  hash to the campaign's on-chain `creativeHash`). Cost: field checks, one keccak, two chain reads; at most
  MAX_CREATIVES are kept.
- `RootNotice`: only the merchant agent the campaign's creative names. Cost: one chain read and rebuilding the
  tree (≤ MAX_LEAVES leaves, offloaded).

Privacy: the ranking (history, fine-tuned weights, scores) stays here. The merchant sees the agent that paid and
its commitment Poseidon(secret, campaign, salt); the secret and salt stay in this agent's store. A claim carries
a nullifier Poseidon(secret, campaign) and a fresh payee address generated here (its key kept in the store);
it goes to a relay, never to the advertiser or the merchant, and on chain it is sent by the relay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import BaseModel
from uagents import Context, Model

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.ads.common import LazyProver, field_element, live_campaign, tree_path, tree_root
from agents.capabilities.ads.ranking import Candidate, rank_locally
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.offload import offload
from agents.settlement import Settlement
from agents.state import Record, Repository, key
from agents.transport import DeliveryError
from marketplace.chain.ads import AdCampaignsClient
from marketplace.ml import RecommenderSpec
from marketplace.zk import ConversionSecret, circuit_inputs
from protocols import ads
from protocols.ads import (
    MAX_CLAIMS,
    MAX_ITEMS,
    MAX_LEAVES,
    TARGETING_DIM,
    ClaimRelay,
    ClaimsQueued,
    CommitmentAccepted,
    ConversionCommitment,
    Creative,
    CreativeAnnounce,
    CreativeReceived,
    RelayedClaim,
    RootNotice,
    RootReceived,
    creative_hash,
    purchase_text,
)
from protocols.errors import ErrorCode

MAX_CREATIVES = 256
"""Creatives one user keeps for ranking; further announcements are refused."""
MAX_HEADLINE = 200
MAX_TARGETING = 10 * 1_000_000
"""Largest absolute targeting weight (millionths)."""

Stage = Literal["paid", "committed", "rooted", "relayed", "claimed"]


class ViewerOptions(BaseModel):
    """A user's ad settings: whose shopping history ranks ads, and how many purchases it makes."""

    enabled: bool = False
    shopper_id: int = 0
    events: int = 128
    world_seed: int = 0
    purchases: int = 1
    """Purchases the user makes when told to shop: one each from its best-ranked campaigns."""


class KnownCreative(Record):
    """A creative checked against its on-chain campaign."""

    campaign_id: int
    creative: dict[str, object]
    merchant_account: str
    end: int


class Conversion(Record):
    """A purchase's conversion: the secret and salt behind its commitment, and how far its claim got."""

    campaign_id: int
    secret: str
    salt: str
    payment_tx: str = ""
    stage: Stage = "paid"
    root: str = ""
    payee: str = ""
    payee_key: str = ""
    """The fresh payee's private key (0x-hex): the user's to spend from, never sent anywhere."""


class Leaves(Record):
    """A published tree of a campaign: its leaves, in order."""

    leaves: list[str]


class ShopResult(BaseModel):
    """How many purchases carried a conversion commitment the merchant accepted."""

    purchases: int
    committed: int


class RelayChoice(BaseModel):
    """The relay agent to hand claims to."""

    relay: str


class ClaimResult(BaseModel):
    """Conversions proven and handed to the relay now, and conversions paid on chain so far."""

    relayed: int
    claimed: int


class AdViewer(Capability):
    """The user's ad capability (see module docstring)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, options: ViewerOptions, seed: int = 0) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.options = options
        self.seed = seed
        self.ads = AdCampaignsClient(settlement.conn)
        self.creatives = Repository(agent.store, "ads.creative", KnownCreative)
        self.conversions = Repository(agent.store, "ads.conversion", Conversion)
        self.trees = Repository(agent.store, "ads.tree", Leaves)
        self.prover = LazyProver()

    def handlers(self) -> Iterable[Handlers]:
        """CreativeAnnounce and RootNotice, in the viewer role of the ads protocol."""
        table: dict[type[Model], Handler] = {CreativeAnnounce: self._on_creative, RootNotice: self._on_root}
        return (Handlers(ads.SPEC, "viewer", table),)

    # --- creatives --------------------------------------------------------------------------------
    async def _on_creative(self, ctx: Context, sender: str, msg: CreativeAnnounce) -> None:
        if not self.options.enabled:
            raise Rejected(ErrorCode.REJECTED, "this user does not take ads")
        _check_creative(msg.creative)
        if self.creatives.get(str(msg.campaign_id)) is not None:
            await ctx.send(sender, CreativeReceived(campaign_id=msg.campaign_id))
            return
        if len(self.creatives) >= MAX_CREATIVES:
            raise Rejected(ErrorCode.REJECTED, f"this user keeps at most {MAX_CREATIVES} creatives")
        campaign = await live_campaign(self.ads, msg.campaign_id, await self.settlement.chain_time())
        if campaign.creative_hash != creative_hash(msg.creative):
            raise Rejected(ErrorCode.REJECTED, "the creative is not the one the campaign committed to on chain")
        record = KnownCreative(
            campaign_id=msg.campaign_id,
            creative=msg.creative.dict(),
            merchant_account=campaign.merchant,
            end=campaign.end,
        )
        self.creatives.add(str(msg.campaign_id), record)
        await ctx.send(sender, CreativeReceived(campaign_id=msg.campaign_id))

    async def rank(self) -> list[tuple[int, float]]:
        """Every live creative kept, best first, scored by this user's own recommender (on this device)."""
        now = await self.settlement.chain_time()
        candidates = [
            Candidate(k.campaign_id, tuple(_creative(k).items), tuple(_creative(k).targeting))
            for k in self.creatives.values()
            if now < k.end
        ]
        if not candidates:
            return []
        o = self.options
        return await offload(rank_locally, o.shopper_id, o.events, self.seed, o.world_seed, candidates)

    # --- purchases --------------------------------------------------------------------------------
    async def shop(self) -> ShopResult:
        """Buy once from each of the best-ranked campaigns (up to `purchases`), handing each merchant a commitment."""
        chosen = [campaign for campaign, _ in await self.rank()][: self.options.purchases]
        committed = 0
        for campaign_id in chosen:
            committed += await self.purchase(campaign_id)
        return ShopResult(purchases=len(chosen), committed=committed)

    async def purchase(self, campaign_id: int) -> bool:
        """Pay the campaign's merchant for one purchase and hand it the conversion commitment; True if accepted."""
        known = self.creatives.get(str(campaign_id))
        if known is None:
            raise ValueError(f"no creative of campaign {campaign_id} is known")
        creative = _creative(known)
        secret = ConversionSecret.new(campaign_id)
        commitment = str(secret.commitment)
        # The secret is stored before any money moves: a crash after paying must not lose the conversion.
        record = Conversion(campaign_id=campaign_id, secret=str(secret.secret), salt=str(secret.salt))
        self.conversions.put(commitment, record)
        receipt = await self.settlement.token.transfer(known.merchant_account, creative.price)
        record.payment_tx = "0x" + bytes(receipt["transactionHash"]).hex()
        self.conversions.put(commitment, record)
        return await self.hand_over(commitment, record, creative.merchant)

    async def hand_over(self, commitment: str, record: Conversion, merchant: str) -> bool:
        """Send the merchant the commitment of a paid purchase; True once it accepted it."""
        text = purchase_text(record.campaign_id, commitment, record.payment_tx, merchant)
        signature = Account.sign_message(encode_defunct(text=text), self.settlement.conn.account.key).signature
        message = ConversionCommitment(
            campaign_id=record.campaign_id, commitment=commitment, payment_tx=record.payment_tx,
            signature="0x" + bytes(signature).hex(),
        )  # fmt: skip
        try:
            await self.agent.request(merchant, message, CommitmentAccepted, wait=30)
        except (RemoteError, DeliveryError, TimeoutError):
            return False  # paid but not handed over: `hand_over` may be retried with the same record
        record.stage = "committed"
        self.conversions.put(commitment, record)
        return True

    # --- roots ------------------------------------------------------------------------------------
    async def _on_root(self, ctx: Context, sender: str, msg: RootNotice) -> None:
        known = self.creatives.get(str(msg.campaign_id))
        if known is None or _creative(known).merchant != sender:
            raise Rejected(ErrorCode.UNAUTHORIZED, "roots are taken only from the campaign's merchant")
        root = field_element(msg.root, "root")
        if not 1 <= len(msg.leaves) <= MAX_LEAVES:
            raise Rejected(ErrorCode.MALFORMED, f"a root notice carries 1..{MAX_LEAVES} leaves")
        leaves = [field_element(leaf, "leaf") for leaf in msg.leaves]
        mine = [c for c, r in self.conversions.items() if r.campaign_id == msg.campaign_id and r.stage == "committed"]
        if not await self.ads.is_root_published(msg.campaign_id, root):
            raise Rejected(ErrorCode.REJECTED, "the root is not published on chain for this campaign")
        if await offload(tree_root, leaves) != root:
            raise Rejected(ErrorCode.MALFORMED, "the leaves do not make the root")
        self.trees.put(key(msg.campaign_id, msg.root), Leaves(leaves=msg.leaves))
        present = set(msg.leaves)
        for commitment in mine:
            record = self.conversions.get(commitment)
            if record is not None and commitment in present and record.stage == "committed":
                record.stage, record.root = "rooted", msg.root
                self.conversions.put(commitment, record)
        await ctx.send(sender, RootReceived(campaign_id=msg.campaign_id, root=msg.root))

    # --- claims -----------------------------------------------------------------------------------
    async def claim(self, choice: RelayChoice) -> ClaimResult:
        """Prove every rooted conversion to a fresh payee and hand the claims to the relay; stop the prover after."""
        await self._settle_relayed()
        claims = []
        try:
            for commitment, record in self.conversions.items():
                if record.stage == "rooted":
                    claims.append(await self._prove(commitment, record))
        finally:
            await self.prover.stop()
        for start in range(0, len(claims), MAX_CLAIMS):
            batch = claims[start : start + MAX_CLAIMS]
            await self.agent.request(choice.relay, ClaimRelay(claims=[c for _, c in batch]), ClaimsQueued, wait=60)
            for commitment, _ in batch:
                relayed = self.conversions.get(commitment)
                assert relayed is not None
                relayed.stage = "relayed"
                self.conversions.put(commitment, relayed)
        return ClaimResult(relayed=len(claims), claimed=await self._settle_relayed())

    async def _prove(self, commitment: str, record: Conversion) -> tuple[str, RelayedClaim]:
        if not record.payee:
            # A fresh account per claim, kept before it is used, so a restart proves to the same payee.
            payee = Account.create()
            record.payee, record.payee_key = payee.address, "0x" + bytes(payee.key).hex()
            self.conversions.put(commitment, record)
        leaves = [int(x) for x in self._leaves(record)]
        path = await offload(tree_path, leaves, int(commitment))
        secret = ConversionSecret(record.campaign_id, int(record.secret), int(record.salt))
        proof = await (await self.prover.get()).prove(circuit_inputs(secret, path, record.payee))
        claim = RelayedClaim(
            campaign_id=record.campaign_id, root=record.root, nullifier=str(secret.nullifier), payee=record.payee,
            proof=[str(word) for word in proof.packed()],
        )  # fmt: skip
        return commitment, claim

    def _leaves(self, record: Conversion) -> list[str]:
        found = self.trees.get(key(record.campaign_id, record.root))
        if found is None:
            raise RuntimeError(f"the leaves of root {record.root[:12]}… of campaign {record.campaign_id} are lost")
        return found.leaves

    async def _settle_relayed(self) -> int:
        """Mark relayed conversions whose nullifier is burned on chain as claimed; how many are claimed in all."""
        claimed = 0
        for commitment, record in self.conversions.items():
            if record.stage == "relayed":
                secret = ConversionSecret(record.campaign_id, int(record.secret), int(record.salt))
                if await self.ads.is_nullifier_used(record.campaign_id, secret.nullifier):
                    record.stage = "claimed"
                    self.conversions.put(commitment, record)
            claimed += record.stage == "claimed"
        return claimed


def _creative(known: KnownCreative) -> Creative:
    return Creative.parse_obj(known.creative)


def _check_creative(creative: Creative) -> None:
    """MALFORMED unless the creative is within the sizes a user ranks."""
    num_items = RecommenderSpec().num_items
    if not 1 <= len(creative.items) <= MAX_ITEMS or not all(0 <= i < num_items for i in creative.items):
        raise Rejected(ErrorCode.MALFORMED, f"a creative features 1..{MAX_ITEMS} items below {num_items}")
    if len(creative.targeting) != TARGETING_DIM or any(abs(w) > MAX_TARGETING for w in creative.targeting):
        raise Rejected(ErrorCode.MALFORMED, f"targeting is {TARGETING_DIM} weights of at most {MAX_TARGETING}")
    if len(creative.headline) > MAX_HEADLINE or creative.price <= 0 or not creative.merchant.startswith("agent1"):
        raise Rejected(ErrorCode.MALFORMED, "headline too long, price not positive or merchant not an agent address")
