"""The merchant's side of the ad market: one conversion commitment per paid purchase, batched into Merkle roots.

Who sends what, and what it costs this agent:
- `ConversionCommitment`: any buyer. Cheap checks first (formats, a replayed payment from the store), then two
  chain reads (the campaign, the payment's receipt) and one signature recovery. It is accepted only if the
  campaign names this merchant's account and is live, the transaction moved at least `price` of the token to
  that account, and the account that paid signed this commitment for this merchant. A payment carries one
  commitment, so fake conversions cost what real purchases cost.

`publish_roots` (operator) puts a root over every campaign's commitments on chain once at least `min_leaves`
are in (a root over one leaf would name its only buyer's claim), and sends every buyer of the campaign the same
`RootNotice` with all leaves. The merchant learns who bought and each purchase's commitment; the commitment hides
the nullifier and payee a claim will show, so it cannot tell which claim is whose.
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_account import Account
from eth_account.messages import encode_defunct
from hexbytes import HexBytes
from pydantic import BaseModel, Field
from uagents import Context, Model
from web3.exceptions import TransactionNotFound

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.ads.common import TX_HASH, field_element, live_campaign, tree_root
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.offload import offload
from agents.settlement import Settlement
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain import ContractRevert
from marketplace.chain.ads import AdCampaignsClient
from protocols import ads
from protocols.ads import MAX_LEAVES, CommitmentAccepted, ConversionCommitment, RootNotice, RootReceived, purchase_text
from protocols.errors import ErrorCode

TRANSFER_TOPIC = HexBytes("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
"""keccak256("Transfer(address,address,uint256)")."""


class MerchantOptions(BaseModel):
    """What the shop charges per purchase and how many commitments a root must cover at least."""

    price: int = 10**16
    min_leaves: int = 2


class Order(Record):
    """A paid purchase whose commitment was accepted (keyed by its payment transaction)."""

    campaign_id: int
    commitment: str
    buyer: str


class Book(Record):
    """A campaign's commitments in tree order, its buyers, and how many leaves the last published root covers."""

    leaves: list[str] = Field(default_factory=list)
    buyers: list[str] = Field(default_factory=list)
    published: int = 0
    root: str = ""


class PublishedRoot(BaseModel):
    """A root put on chain: its campaign, its value and how many commitments it covers."""

    campaign_id: int
    root: str
    leaves: int


class RootsPublished(BaseModel):
    """The roots published by one `publish_roots`."""

    roots: list[PublishedRoot]


class MerchantBook(Capability):
    """The merchant's ad capability (see module docstring)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, options: MerchantOptions) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.options = options
        self.ads = AdCampaignsClient(settlement.conn)
        self.orders = Repository(agent.store, "ads.order", Order)
        self.books = Repository(agent.store, "ads.book", Book)

    def handlers(self) -> Iterable[Handlers]:
        """ConversionCommitment, in the merchant role of the ads protocol."""
        table: dict[type[Model], Handler] = {ConversionCommitment: self._on_commitment}
        return (Handlers(ads.SPEC, "merchant", table),)

    async def _on_commitment(self, ctx: Context, sender: str, msg: ConversionCommitment) -> None:
        field_element(msg.commitment, "commitment")
        if not TX_HASH.match(msg.payment_tx):
            raise Rejected(ErrorCode.MALFORMED, "payment_tx is not a transaction hash")
        tx = msg.payment_tx.lower()
        if self.orders.get(tx) is not None:
            raise Rejected(ErrorCode.REPLAYED, "this payment already carries a commitment")
        campaign = await live_campaign(self.ads, msg.campaign_id, await self.settlement.chain_time())
        if campaign.merchant.lower() != self.settlement.account.lower():
            raise Rejected(ErrorCode.REJECTED, f"campaign {msg.campaign_id} names another merchant")
        payer = await self._payer(tx)
        text = purchase_text(msg.campaign_id, msg.commitment, msg.payment_tx, self.agent.address)
        try:
            signer = Account.recover_message(encode_defunct(text=text), signature=HexBytes(msg.signature))
        except (ValueError, TypeError) as exc:
            raise Rejected(ErrorCode.BAD_SIGNATURE, "undecodable purchase signature") from exc
        if signer.lower() != payer.lower():
            raise Rejected(ErrorCode.UNAUTHORIZED, "the purchase is not signed by the account that paid")
        book = self.books.get(str(msg.campaign_id)) or Book()
        if msg.commitment in book.leaves:
            raise Rejected(ErrorCode.REPLAYED, "this commitment is already in the campaign's tree")
        if len(book.leaves) >= MAX_LEAVES:
            raise Rejected(ErrorCode.REJECTED, f"campaign {msg.campaign_id} holds {MAX_LEAVES} commitments already")
        if not self.orders.add(tx, Order(campaign_id=msg.campaign_id, commitment=msg.commitment, buyer=sender)):
            raise Rejected(ErrorCode.REPLAYED, "this payment already carries a commitment")
        # No await between reading the book and writing it back: concurrent handlers cannot lose a leaf.
        book.leaves.append(msg.commitment)
        if sender not in book.buyers:
            book.buyers.append(sender)
        self.books.put(str(msg.campaign_id), book)
        await ctx.send(sender, CommitmentAccepted(campaign_id=msg.campaign_id, commitment=msg.commitment))

    async def _payer(self, tx: str) -> str:
        """The account that paid this merchant at least `price` of the token in `tx`; REJECTED otherwise."""
        try:
            receipt = await self.settlement.conn.w3.eth.get_transaction_receipt(HexBytes(tx))
        except TransactionNotFound as exc:
            raise Rejected(ErrorCode.REJECTED, "no such payment on chain") from exc
        token = self.settlement.token.address.lower()
        me = self.settlement.account.lower()
        for log in receipt["logs"] if receipt["status"] == 1 else []:
            topics = log["topics"]
            if str(log["address"]).lower() != token or len(topics) != 3 or HexBytes(topics[0]) != TRANSFER_TOPIC:
                continue
            recipient = "0x" + HexBytes(topics[2])[-20:].hex()
            if recipient.lower() == me and int.from_bytes(HexBytes(log["data"]), "big") >= self.options.price:
                return "0x" + HexBytes(topics[1])[-20:].hex()
        raise Rejected(ErrorCode.REJECTED, "the transaction did not pay this merchant the price")

    async def publish_roots(self) -> RootsPublished:
        """Publish a root over each campaign's commitments that has new ones (and enough), and tell its buyers."""
        published = []
        for campaign_id, book in self.books.items():
            if len(book.leaves) <= book.published or len(book.leaves) < self.options.min_leaves:
                continue
            count = len(book.leaves)
            root = await offload(tree_root, [int(leaf) for leaf in book.leaves[:count]])
            try:
                await self.ads.publish_root(int(campaign_id), root)
            except ContractRevert as exc:
                if exc.name != "RootAlreadyPublished":
                    raise
            latest = self.books.get(campaign_id) or book
            latest.published, latest.root = count, str(root)
            self.books.put(campaign_id, latest)
            await self._notify(int(campaign_id), str(root), latest.leaves[:count], latest.buyers)
            published.append(PublishedRoot(campaign_id=int(campaign_id), root=str(root), leaves=count))
        return RootsPublished(roots=published)

    async def _notify(self, campaign_id: int, root: str, leaves: list[str], buyers: list[str]) -> None:
        """The same notice to every buyer of the campaign (a buyer that cannot be reached asks again later)."""
        notice = RootNotice(campaign_id=campaign_id, root=root, leaves=leaves)
        for buyer in buyers:
            try:
                await self.agent.request(buyer, notice, RootReceived, wait=60)
            except (RemoteError, DeliveryError, TimeoutError) as exc:
                self.agent.logger.warning("root notice to %s… refused: %s", buyer[:16], exc)
