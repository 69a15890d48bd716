"""uAgents `sig1…` signatures checked in libsecp256k1 (protocols/signatures.py): the same answers as uAgents' own
python-ecdsa check, on signatures from both signers, at a fraction of the cost."""

from __future__ import annotations

import hashlib

import pytest
from uagents_core.identity import Identity

from agents.crypto import FastIdentity
from protocols.signatures import SignatureError, verify_digest

DIGESTS = [hashlib.sha256(str(i).encode()).digest() for i in range(24)]


@pytest.mark.parametrize("fast", [False, True], ids=["uagents-signer", "coincurve-signer"])
def test_accepts_exactly_what_uagents_accepts(fast: bool) -> None:
    """uAgents' signer emits high-s signatures half the time: they must verify too (and did, across 24 digests)."""
    signer = Identity.from_seed("signature-test", 0)
    other = Identity.from_seed("signature-test-other", 0)
    if fast:
        signer = FastIdentity.from_identity(signer)
    for digest in DIGESTS:
        signature = signer.sign_digest(digest)
        assert Identity.verify_digest(signer.address, digest, signature)
        verify_digest(signer.address, signature, digest)
        with pytest.raises(SignatureError):
            verify_digest(other.address, signature, digest)  # another key's address
        with pytest.raises(SignatureError):
            verify_digest(signer.address, signature, hashlib.sha256(digest).digest())  # another message


@pytest.mark.parametrize(
    "signature",
    ["", "sig1", "abc1qqqqqqqq", "sig1" + "b" * 103, "sig1" + "q" * 103, "sig1" + "q" * 40],
    ids=["empty", "prefix-only", "wrong-prefix", "bad-character", "zero-r-s", "short"],
)
def test_malformed_signatures_are_refused_with_a_signature_error(signature: str) -> None:
    signer = Identity.from_seed("signature-test", 0)
    with pytest.raises(SignatureError):
        verify_digest(signer.address, signature, DIGESTS[0])


def test_address_without_a_key_is_refused() -> None:
    signature = Identity.from_seed("signature-test", 0).sign_digest(DIGESTS[0])
    with pytest.raises(SignatureError):
        verify_digest("agent1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", signature, DIGESTS[0])
