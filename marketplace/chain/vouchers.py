"""EIP-712 payment-channel vouchers, signed and verified in Python exactly as PaymentChannels does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

DOMAIN_NAME = "Agora PaymentChannels"
DOMAIN_VERSION = "1"
VOUCHER_FIELDS = [
    {"name": "channelId", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "amount", "type": "uint256"},
]


@dataclass(frozen=True)
class VoucherDomain:
    """The EIP-712 domain of one PaymentChannels deployment."""

    chain_id: int
    verifying_contract: str


@dataclass(frozen=True)
class Voucher:
    """A promise that channel `channel_id` owes its recipient `amount` base units in total."""

    channel_id: int
    nonce: int
    amount: int

    def as_tuple(self) -> tuple[int, int, int]:
        """The ABI tuple of the Solidity Voucher struct."""
        return (self.channel_id, self.nonce, self.amount)


@dataclass(frozen=True)
class SignedVoucher:
    """A voucher with its sender's 65-byte signature (r || s || v)."""

    voucher: Voucher
    signature: bytes


def _typed_data(voucher: Voucher, domain: VoucherDomain) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Voucher": VOUCHER_FIELDS,
        },
        "primaryType": "Voucher",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.verifying_contract),
        },
        "message": {"channelId": voucher.channel_id, "nonce": voucher.nonce, "amount": voucher.amount},
    }


def _signable(voucher: Voucher, domain: VoucherDomain) -> SignableMessage:
    return encode_typed_data(full_message=_typed_data(voucher, domain))


def voucher_digest(voucher: Voucher, domain: VoucherDomain) -> bytes:
    """The 32-byte EIP-712 digest the sender signs (PaymentChannels.voucherDigest)."""
    message = _signable(voucher, domain)
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_voucher(account: LocalAccount, voucher: Voucher, domain: VoucherDomain) -> SignedVoucher:
    """Sign a voucher as the channel's sender."""
    signed = account.sign_message(_signable(voucher, domain))
    return SignedVoucher(voucher, bytes(signed.signature))


def recover_voucher_signer(signed: SignedVoucher, domain: VoucherDomain) -> str:
    """The address that signed a voucher (checksummed)."""
    return str(Account.recover_message(_signable(signed.voucher, domain), signature=signed.signature))


def verify_voucher(signed: SignedVoucher, sender: str, domain: VoucherDomain) -> bool:
    """Whether the voucher was signed by `sender`; a malformed signature is simply not valid."""
    try:
        return recover_voucher_signer(signed, domain) == to_checksum_address(sender)
    except (BadSignature, ValueError, TypeError):
        return False
