"""Payment-channel messages: channel opened, EIP-712 vouchers for cumulative amounts, receipts."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


class ChannelOpened(Model):
    """A payer tells the payee a PaymentChannels channel exists (ids and addresses as 0x-hex; amounts in base units)."""

    channel_id: str
    chain_id: int
    contract: str
    payer: str
    payee: str
    deposit: int
    expiry: int


class Voucher(Model):
    """An EIP-712 signed promise of `cumulative_amount` on a channel; `signature` is 0x-hex (65 bytes)."""

    channel_id: str
    cumulative_amount: int
    nonce: int
    signature: str
    job_id: str


class Receipt(Model):
    """The payee acknowledges a voucher for a job: what this call cost and the running total."""

    channel_id: str
    job_id: str
    amount: int
    cumulative_amount: int
    nonce: int


SPEC = ProtocolSpecification(
    name="agora-payment",
    version="1.0.0",
    interactions={
        ChannelOpened: {Receipt, ErrorReply},
        Voucher: {Receipt, ErrorReply},
        Receipt: set(),
    },
    roles={"payer": {Receipt}, "payee": {ChannelOpened, Voucher}},
)
"""Roles: the payee receives channel notices and vouchers; the payer receives receipts."""
