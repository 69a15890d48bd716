"""EIP-712 payment-channel vouchers, signed and verified in Python exactly as PaymentChannels does."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import coincurve
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


def typed_data(voucher: Voucher, domain: VoucherDomain) -> dict[str, Any]:
    """The voucher as EIP-712 typed data (what a wallet shows; `eth_account.messages.encode_typed_data` input)."""
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


# The digest is computed directly (typehashes and domain separator cached) rather than through
# eth-account's generic typed-data encoder: identical bytes, ~40x faster, and it is on every paid call.
_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_VOUCHER_TYPEHASH = keccak(text="Voucher(uint256 channelId,uint256 nonce,uint256 amount)")
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


@functools.lru_cache(maxsize=64)
def _domain_separator(domain: VoucherDomain) -> bytes:
    contract = bytes.fromhex(to_checksum_address(domain.verifying_contract)[2:])
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(text=DOMAIN_NAME)
        + keccak(text=DOMAIN_VERSION)
        + domain.chain_id.to_bytes(32, "big")
        + contract.rjust(32, b"\x00")
    )


def voucher_digest(voucher: Voucher, domain: VoucherDomain) -> bytes:
    """The 32-byte EIP-712 digest the sender signs (PaymentChannels.voucherDigest)."""
    struct_hash = keccak(
        _VOUCHER_TYPEHASH
        + voucher.channel_id.to_bytes(32, "big")
        + voucher.nonce.to_bytes(32, "big")
        + voucher.amount.to_bytes(32, "big")
    )
    return keccak(b"\x19\x01" + _domain_separator(domain) + struct_hash)


def sign_voucher(account: LocalAccount, voucher: Voucher, domain: VoucherDomain) -> SignedVoucher:
    """Sign a voucher as the channel's sender (r || s || v, low-s, v in {27, 28})."""
    raw = coincurve.PrivateKey(bytes(account.key)).sign_recoverable(voucher_digest(voucher, domain), hasher=None)
    return SignedVoucher(voucher, raw[:64] + bytes([raw[64] + 27]))


def recover_voucher_signer(signed: SignedVoucher, domain: VoucherDomain) -> str:
    """The address that signed a voucher (checksummed); rejects what OpenZeppelin's ECDSA.recover rejects."""
    signature = signed.signature
    if len(signature) != 65:
        raise ValueError(f"a voucher signature is 65 bytes, got {len(signature)}")
    if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
        raise ValueError("high-s signature (malleable): PaymentChannels would reject it")
    recovery_id = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if recovery_id not in (0, 1):
        raise ValueError(f"bad signature v {signature[64]}")
    digest = voucher_digest(signed.voucher, domain)
    public_key = coincurve.PublicKey.from_signature_and_message(
        signature[:64] + bytes([recovery_id]), digest, hasher=None
    )
    return str(to_checksum_address(keccak(public_key.format(compressed=False)[1:])[-20:]))


def verify_voucher(signed: SignedVoucher, sender: str, domain: VoucherDomain) -> bool:
    """Whether the voucher was signed by `sender`; a malformed signature is simply not valid."""
    try:
        return recover_voucher_signer(signed, domain) == to_checksum_address(sender)
    except (BadSignature, ValueError, TypeError, OverflowError):
        return False
