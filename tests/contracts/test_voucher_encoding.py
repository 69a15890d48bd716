"""The fast voucher encoder agrees byte for byte with eth-account's generic EIP-712 implementation."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.chain.vouchers import (
    SignedVoucher,
    Voucher,
    VoucherDomain,
    recover_voucher_signer,
    sign_voucher,
    typed_data,
    verify_voucher,
    voucher_digest,
)

SENDER = Account.from_key(b"\x11" * 32)
DOMAIN = VoucherDomain(1337, "0x0165878A594ca255338adfa4d48449f69242Eb8F")
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(channel_id=UINT256, nonce=UINT256, amount=UINT256, chain_id=st.integers(min_value=1, max_value=2**64))
def test_voucher_digest_matchesEthAccountTypedData(channel_id: int, nonce: int, amount: int, chain_id: int) -> None:
    voucher, domain = Voucher(channel_id, nonce, amount), VoucherDomain(chain_id, DOMAIN.verifying_contract)
    message = encode_typed_data(full_message=typed_data(voucher, domain))
    assert voucher_digest(voucher, domain) == keccak(b"\x19" + message.version + message.header + message.body)
    assert sign_voucher(SENDER, voucher, domain).signature == bytes(SENDER.sign_message(message).signature)


def test_recover_voucher_signer_returnsTheSender() -> None:
    signed = sign_voucher(SENDER, Voucher(7, 0, 10**18), DOMAIN)
    assert recover_voucher_signer(signed, DOMAIN) == SENDER.address
    assert verify_voucher(signed, SENDER.address, DOMAIN)


def test_verify_voucher_refusesTamperedAmount() -> None:
    signed = sign_voucher(SENDER, Voucher(7, 0, 10**18), DOMAIN)
    assert not verify_voucher(SignedVoucher(Voucher(7, 0, 2 * 10**18), signed.signature), SENDER.address, DOMAIN)


def test_verify_voucher_refusesHighSSignature() -> None:
    # (r, n - s, v ^ 1) recovers the same key, but OpenZeppelin's ECDSA rejects it: so must the seller.
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    signed = sign_voucher(SENDER, Voucher(7, 0, 10**18), DOMAIN)
    r, s, v = signed.signature[:32], int.from_bytes(signed.signature[32:64], "big"), signed.signature[64]
    malleable = SignedVoucher(signed.voucher, r + (n - s).to_bytes(32, "big") + bytes([v ^ 1]))
    assert not verify_voucher(malleable, SENDER.address, DOMAIN)
    with pytest.raises(ValueError, match="high-s"):
        recover_voucher_signer(malleable, DOMAIN)


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\x01" * 64 + b"\x05"])
def test_verify_voucher_refusesMalformedSignature(signature: bytes) -> None:
    assert not verify_voucher(SignedVoucher(Voucher(1, 0, 1), signature), SENDER.address, DOMAIN)
