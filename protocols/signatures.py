"""secp256k1 signatures in uAgents' `sig1…` format, checked through libsecp256k1 (coincurve): ~0.1 ms each instead
of python-ecdsa's ~5 ms. Envelopes (agents/crypto.py), blob fetches and the registry's signed writes all check here.
"""

from __future__ import annotations

from functools import lru_cache

import bech32
from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact

_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = _ORDER // 2


class SignatureError(ValueError):
    """A signature is missing, undecodable, or does not match the address of the key said to have made it."""


# The reference `bech32` package costs ~150 µs per signature; these table-driven versions ~20 µs.
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_VALUE = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_POLYMOD_TABLE = tuple(
    _GENERATOR[0] * (b & 1)
    ^ _GENERATOR[1] * (b >> 1 & 1)
    ^ _GENERATOR[2] * (b >> 2 & 1)
    ^ _GENERATOR[3] * (b >> 3 & 1)
    ^ _GENERATOR[4] * (b >> 4 & 1)
    for b in range(32)
)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        chk = (((chk & 0x1FFFFFF) << 5) ^ value) ^ _POLYMOD_TABLE[chk >> 25]
    return chk


def bech32_encode(prefix: str, raw: bytes) -> str:
    """bech32 of `raw` under `prefix` (as uAgents encodes signatures: `sig1…`)."""
    groups = (len(raw) * 8 + 4) // 5
    padded = raw + b"\0" * (-len(raw) % 5)
    data: list[int] = []
    for i in range(0, len(padded), 5):  # 5 bytes = 40 bits = 8 five-bit groups
        chunk = int.from_bytes(padded[i : i + 5], "big")
        data += (chunk >> 35 & 31, chunk >> 30 & 31, chunk >> 25 & 31, chunk >> 20 & 31)
        data += (chunk >> 15 & 31, chunk >> 10 & 31, chunk >> 5 & 31, chunk & 31)
    del data[groups:]
    expanded = [ord(c) >> 5 for c in prefix] + [0] + [ord(c) & 31 for c in prefix]
    checksum = _polymod(expanded + data + [0] * 6) ^ 1
    data += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return prefix + "1" + "".join([_CHARSET[d] for d in data])


def _bech32_decode(value: str, expected_prefix: str) -> bytes:
    """Decode without checking the bech32 checksum: the ECDSA check that follows is what authenticates."""
    if not value.startswith(expected_prefix + "1") or len(value) < len(expected_prefix) + 8:
        raise SignatureError(f"not a {expected_prefix}1… value")
    body = value[len(expected_prefix) + 1 : -6]
    number = 0
    try:
        for char in body:
            number = (number << 5) | _CHAR_VALUE[char]
    except KeyError as err:
        raise SignatureError("bad bech32 character") from err
    size = len(body) * 5 // 8
    return (number >> (len(body) * 5 - size * 8)).to_bytes(size, "big")


@lru_cache(maxsize=4096)
def public_key_of(address: str) -> PublicKey:
    """The secp256k1 public key encoded in an `agent1…` address (cached: senders repeat)."""
    prefix, data = bech32.bech32_decode(address)
    raw = bytes(bech32.convertbits(data, 5, 8, False) or b"") if prefix == "agent" and data else b""
    try:
        return PublicKey(raw)
    except ValueError as err:
        raise SignatureError("address holds no valid public key") from err


def verify_digest(address: str, signature: str, digest: bytes) -> None:
    """Check a uAgents `sig1…` signature of a 32-byte digest by the key behind `address`; raise SignatureError."""
    compact = _bech32_decode(signature, "sig")
    if len(compact) != 64:
        raise SignatureError("signature must be 64 bytes")
    r, s = int.from_bytes(compact[:32], "big"), int.from_bytes(compact[32:], "big")
    if not (0 < r < _ORDER and 0 < s < _ORDER):
        raise SignatureError("signature out of range")
    # uAgents' ecdsa signer emits high-s half the time; libsecp256k1 only verifies low-s, so normalise.
    if s > _HALF_ORDER:
        compact = compact[:32] + (_ORDER - s).to_bytes(32, "big")
    der = cdata_to_der(deserialize_compact(compact))
    if not public_key_of(address).verify(der, digest, hasher=None):
        raise SignatureError("signature does not match sender")
