"""Typed client for PaymentChannels: open, top up, extend, claim (one or many) and refund."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount

from marketplace.chain.base import ContractClient
from marketplace.chain.vouchers import SignedVoucher, Voucher, VoucherDomain, sign_voucher


@dataclass(frozen=True)
class Channel:
    """A channel as stored on chain (amounts in token base units)."""

    channel_id: int
    sender: str
    recipient: str
    expiry: int
    nonce: int
    deposit: int
    claimed: int
    model_id: int
    closed: bool

    @property
    def unclaimed(self) -> int:
        """What is still in the channel: deposit minus claimed (0 once closed)."""
        return 0 if self.closed else self.deposit - self.claimed


@dataclass(frozen=True)
class ChannelOpened:
    """A ChannelOpened event."""

    channel_id: int
    sender: str
    recipient: str
    deposit: int
    expiry: int
    model_id: int


@dataclass(frozen=True)
class ChannelClaimed:
    """A ChannelClaimed event: `amount` newly paid, `cumulative` now claimed in total."""

    channel_id: int
    recipient: str
    amount: int
    cumulative: int


class SkipReason(IntEnum):
    """Why claimMany passed over a voucher, as the contract's SkipReason enum."""

    CLOSED = 0
    """The channel was refunded (closed) since the voucher was signed."""
    ALREADY_CLAIMED = 1
    """The voucher's amount is not above what the channel already paid."""


@dataclass(frozen=True)
class ClaimSkipped:
    """A ClaimSkipped event: a voucher in a claimMany batch that could no longer pay."""

    channel_id: int
    reason: SkipReason


@dataclass(frozen=True)
class ClaimBatch:
    """What one claimMany settled: the vouchers paid and the ones passed over."""

    claimed: tuple[ChannelClaimed, ...]
    skipped: tuple[ClaimSkipped, ...]

    @property
    def amount(self) -> int:
        """Total newly paid by the batch (before royalties)."""
        return sum(c.amount for c in self.claimed)


@dataclass(frozen=True)
class ChannelRefunded:
    """A ChannelRefunded event: the channel closed and `amount` went back to the sender."""

    channel_id: int
    sender: str
    amount: int


class ChannelsClient(ContractClient):
    """PaymentChannels seen from one signer (sender, recipient or bystander)."""

    contract_name = "PaymentChannels"

    @property
    def domain(self) -> VoucherDomain:
        """The EIP-712 domain vouchers for this deployment are signed in."""
        return VoucherDomain(self.conn.deployment.chain_id, self.address)

    async def open_channel(self, recipient: str, deposit: int, expiry: int, model_id: int = 0) -> ChannelOpened:
        """Open a channel from this signer (needs a token allowance for the contract).

        `expiry` must be at least `min_channel_duration()` after the opening block's time.
        """
        fn = self.contract.functions.openChannel(self._cs(recipient), deposit, expiry, model_id)
        return self._one(
            await self._send(fn),
            "ChannelOpened",
            lambda a: ChannelOpened(
                a["channelId"], a["sender"], a["recipient"], a["deposit"], a["expiry"], a["modelId"]
            ),
        )

    async def top_up(self, channel_id: int, amount: int) -> None:
        """Add to a channel's deposit (sender)."""
        await self._send(self.contract.functions.topUp(channel_id, amount))

    async def extend(self, channel_id: int, expiry: int) -> None:
        """Move a channel's expiry later (sender)."""
        await self._send(self.contract.functions.extend(channel_id, expiry))

    async def sign(
        self, sender: LocalAccount, channel_id: int, cumulative: int, nonce: int | None = None
    ) -> SignedVoucher:
        """Sign a voucher for `cumulative` as `sender` (reads the channel's nonce unless given)."""
        if nonce is None:
            nonce = (await self.get_channel(channel_id)).nonce
        return sign_voucher(sender, Voucher(channel_id, nonce, cumulative), self.domain)

    async def claim(self, signed: SignedVoucher) -> ChannelClaimed:
        """Claim one voucher (recipient)."""
        fn = self.contract.functions.claim(signed.voucher.as_tuple(), signed.signature)
        return self._one(await self._send(fn), "ChannelClaimed", _claimed)

    async def claim_many(self, signed: Sequence[SignedVoucher]) -> list[ChannelClaimed]:
        """Claim vouchers of several channels in one transaction (recipient of all of them).

        Returns the claims paid; vouchers of channels refunded since, or already claimed, are skipped
        (see `claim_batch` for which).
        """
        return list((await self.claim_batch(signed)).claimed)

    async def claim_batch(self, signed: Sequence[SignedVoucher]) -> ClaimBatch:
        """Claim vouchers of several channels in one transaction; reports the paid and the skipped ones."""
        fn = self.contract.functions.claimMany([s.voucher.as_tuple() for s in signed], [s.signature for s in signed])
        receipt = await self._send(fn)
        skipped = self._decode(receipt, "ClaimSkipped", lambda a: ClaimSkipped(a["channelId"], SkipReason(a["reason"])))
        return ClaimBatch(tuple(self._decode(receipt, "ChannelClaimed", _claimed)), tuple(skipped))

    async def refund(self, channel_id: int) -> ChannelRefunded:
        """Close an expired channel and return the unclaimed rest to its sender (anyone)."""
        receipt = await self._send(self.contract.functions.refund(channel_id))
        return self._one(
            receipt, "ChannelRefunded", lambda a: ChannelRefunded(a["channelId"], a["sender"], a["amount"])
        )

    async def get_channel(self, channel_id: int) -> Channel:
        """A channel by id."""
        sender, deposit, recipient, model_id, claimed, expiry, nonce, closed = await self.conn.call(
            self.contract.functions.getChannel(channel_id)
        )
        return Channel(channel_id, str(sender), str(recipient), expiry, nonce, deposit, claimed, model_id, closed)

    async def min_channel_duration(self) -> int:
        """Shortest time (seconds) from opening a channel to its expiry that the contract accepts."""
        value: int = await self.conn.call(self.contract.functions.minChannelDuration())
        return value

    async def channel_count(self) -> int:
        """Number of channels opened (the highest id)."""
        count: int = await self.conn.call(self.contract.functions.channelCount())
        return count

    async def voucher_digest(self, voucher: Voucher) -> bytes:
        """The EIP-712 digest as the contract computes it."""
        digest: bytes = await self.conn.call(self.contract.functions.voucherDigest(voucher.as_tuple()))
        return bytes(digest)

    async def recover_signer(self, signed: SignedVoucher) -> str:
        """The signer the contract recovers from a signed voucher (zero address if malformed)."""
        fn = self.contract.functions.recoverVoucherSigner(signed.voucher.as_tuple(), signed.signature)
        signer: str = await self.conn.call(fn)
        return signer


def _claimed(args: dict[str, int | str]) -> ChannelClaimed:
    return ChannelClaimed(int(args["channelId"]), str(args["recipient"]), int(args["amount"]), int(args["cumulative"]))
