"""Secure aggregation of clipped, quantised model updates: Bonawitz et al. 2017 with SecAgg+ neighbourhoods.

The server learns the sum of the surviving clients' updates and nothing about any single one. Each client
adds random masks to its quantised update; the masks cancel in the sum or are removed by the server with
secrets it can only rebuild from shares held by the client's neighbours.

One round, for participants with small positive ids, threshold `t` and neighbour degree `k`:

1. `ClientRound.advertise`: each client makes two X25519 key pairs — `c` to encrypt shares to its neighbours,
   `s` to agree pairwise masks — and a random 16-byte (128-bit) self-mask seed `b`, and advertises both public
   keys and a SHA-256 commitment to `b` bound to the round and the client. The server relays the adverts
   (`ServerRound.collect_adverts`).
2. The neighbour graph is public and deterministic: the participants sit on a ring in an order drawn from
   SHA-256 of the round id, and each is joined to the `k/2` nearest on either side (a randomly permuted Harary
   graph, as in SecAgg+). `k=None` or `k >= n-1` is the complete graph of the original protocol.
3. `ClientRound.share_keys`: each client Shamir-splits `b` and the 16-byte seed its `s_sk` is derived from
   (pycryptodome, one split of one 16-byte secret each) among its closed neighbourhood — itself plus its
   neighbours — keeps its own shares and encrypts each neighbour's pair of shares (16 bytes each) with AES-GCM
   under a key derived from X25519(c_sk, neighbour's c_pk). The server routes the ciphertexts without being able
   to read them (`ServerRound.route_shares`).
4. `ClientRound.masked_input`: a client still alive sends y = x + PRG(k_i) + Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ij)
   mod 2^32, summing over the neighbours j whose shares it received. PRG is the ChaCha20 keystream of a 32-byte
   key; k_i = HKDF-SHA256(b_i) stretches the seed to one, bound to the round and to i, and
   s_ij = HKDF-SHA256(X25519(s_sk_i, s_pk_j)) is bound to the round and the pair (each under its own label).
5. `ServerRound.collect_masked_inputs` names the survivors (sent y) and the dropped (shared keys, sent no y).
   `ClientRound.unmask`: each survivor reveals its shares of the survivors' `b` and of the dropped clients'
   `s_sk` seeds — never both for one client, and only if the server's lists agree with what the client itself saw.
6. `ServerRound.aggregate` rebuilds each survivor's `b` and each dropped client's `s_sk` (from its seed), checks
   them against the advertised commitment and public key, derives k_i from each `b`, and removes the self-masks
   and the dropped clients' pairwise masks: Σ y over survivors, minus those, is the sum of the survivors' quantised
   updates. The Shamir combines, nearly all of its cost, can run in parallel workers: `collect_unmask_responses`,
   then `rebuild_secrets` on `SecretShares.chunks`, then `finish`.

The threshold `t` counts shares within one client's closed neighbourhood (the client and its k neighbours, k+1
shares): any t of them rebuild that client's secrets, t−1 reveal nothing. A round therefore completes only if every
survivor has at least t survivors in its closed neighbourhood (itself included) and every dropped client with a
surviving neighbour has at least t surviving neighbours. On the complete graph this is the classic global rule: at
least t of the n clients survive. `RoundConfig` requires t > (k+1)/2, so a server that tells some neighbours a
client survived and others that it dropped cannot collect t shares of both its `b` and its `s_sk`.

What the server learns: the sum of the survivors' clipped, quantised updates, who advertised, shared and survived,
and the vector length — provided fewer than t members of any honest client's closed neighbourhood collude with it
(SecAgg+ picks the graph at random so that this holds with high probability). What is not defended here: clients
are not authenticated (the agent layer must sign the adverts, or a server could pose as clients), and a client can
submit any vector within the modulus (no range proofs). Updates are clipped to [-clip, clip] per coordinate
(optionally to an L2 ball first) and quantised with scale 2^scale_bits to int32 stored mod 2^32; `RoundConfig`
refuses settings under which a sum could overflow.

Every step is a method taking and returning plain values (bytes, ints, uint32 numpy arrays, frozen dataclasses),
and `ClientRound`/`ServerRound` keep only such values, so a step can run in another thread or process. Cost is
dominated by pycryptodome's pure-Python Shamir, which works on 16-byte secrets: each client makes 2 splits (of `b`
and of the `s_sk` seed; about 3 ms each at k=20, t=11), and the server makes one combine of t shares (about 10 ms
at t=11) per survivor and per dropped client with a surviving neighbour. A 100-client round with k=20, t=11,
5 dropouts and 70,000 parameters costs about 2.4 s of CPU: some 0.7 s of splits, 1.0 s of combines and 0.5 s of
ChaCha20 masks (`SecretShares.chunks` lets the combines run in parallel workers).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

Words = npt.NDArray[np.uint32]
"""A vector of integers mod 2^32: quantised updates, masks, masked inputs and their sums."""

_DOMAIN = b"agora.secagg.v1/"
_KEY_BYTES = 32  # X25519 keys, ChaCha20 keys, SHA-256 commitments
_CHUNK_BYTES = 16  # pycryptodome's Shamir shares 16-byte secrets; longer ones go in 16-byte chunks
_SEED_BYTES = 16  # the self-mask seed b: one Shamir secret, stretched to a ChaCha20 key by HKDF
_B_SHARE_BYTES = _SEED_BYTES  # a Shamir share is as long as its secret
_S_SEED_BYTES = 16  # the seed s_sk is derived from: one Shamir secret, 128 bits like X25519's security level
_S_SK_SHARE_BYTES = _S_SEED_BYTES
_PAYLOAD_BYTES = _B_SHARE_BYTES + _S_SK_SHARE_BYTES  # a share of b, then a share of the s_sk seed
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_ID = 2**32 - 1


class SecAggError(ValueError):
    """Base of every secure-aggregation error."""


class ConfigError(SecAggError):
    """A round or quantisation setting is invalid or unsafe."""


class WrongRound(SecAggError):
    """A message belongs to another round."""


class MalformedMessage(SecAggError):
    """A message is ill-formed: wrong length or shape, unknown or duplicate participant, unexpected share."""


class ShareDecryptionFailed(SecAggError):
    """An encrypted share failed AES-GCM authentication (tampered, misrouted or replayed)."""


class ProtocolViolation(SecAggError):
    """A step was called out of order, or the server asked for something an honest client must refuse."""


class RoundAborted(SecAggError):
    """The round cannot complete safely (too few survivors or shares, or a secret failed its check)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Quantisation:
    """How float updates become integers mod 2^32: L2 clip (optional), coordinate clip, then scale 2^scale_bits."""

    clip: float = 1.0
    scale_bits: int = 16
    l2_clip: float | None = None

    def __post_init__(self) -> None:
        if not _is_positive(self.clip):
            raise ConfigError(f"clip must be a positive number, not {self.clip!r}")
        if not (isinstance(self.scale_bits, int) and 0 <= self.scale_bits <= 30):
            raise ConfigError(f"scale_bits must be in 0..30, not {self.scale_bits!r}")
        if self.l2_clip is not None and not _is_positive(self.l2_clip):
            raise ConfigError(f"l2_clip must be a positive number or None, not {self.l2_clip!r}")

    @property
    def scale(self) -> int:
        """Integer units per 1.0 of update."""
        return 1 << self.scale_bits


@dataclass(frozen=True)
class RoundConfig:
    """Public settings of one round, known to every party; participants are kept sorted."""

    round_id: bytes
    participants: tuple[int, ...]
    threshold: int
    neighbours: int | None
    vector_length: int
    quantisation: Quantisation = field(default_factory=Quantisation)

    def __post_init__(self) -> None:
        if not isinstance(self.round_id, bytes) or len(self.round_id) != 32:
            raise ConfigError("round_id must be 32 bytes")
        ids = tuple(self.participants)
        if any(not _is_id(i) for i in ids):
            raise ConfigError(f"participant ids must be ints in 1..{_MAX_ID}")
        if len(set(ids)) != len(ids):
            raise ConfigError("participant ids must be distinct")
        if len(ids) < 2:
            raise ConfigError("a round needs at least 2 participants")
        object.__setattr__(self, "participants", tuple(sorted(ids)))
        n = len(ids)
        k = self.neighbours
        if k is not None and (not isinstance(k, int) or k < 1 or (k < n - 1 and k % 2)):
            raise ConfigError(f"neighbours must be None, >= n-1, or a positive even number; got {k!r}")
        if not (isinstance(self.threshold, int) and self.degree + 1 < 2 * self.threshold <= 2 * (self.degree + 1)):
            raise ConfigError(
                f"threshold must be a majority of the {self.degree + 1} shares of each secret "
                f"(more than {(self.degree + 1) / 2}, at most {self.degree + 1}); got {self.threshold!r}"
            )
        if not isinstance(self.vector_length, int) or self.vector_length < 1:
            raise ConfigError(f"vector_length must be a positive int, not {self.vector_length!r}")
        # Rounding may add half a unit to a clipped coordinate; the signed sum must stay below 2^31.
        if n * (self.quantisation.clip * self.quantisation.scale + 0.5) >= 2**31:
            raise ConfigError(f"a sum of {n} updates clipped to {self.quantisation.clip} overflows int32 at this scale")

    @property
    def degree(self) -> int:
        """Neighbours per client: k, or n−1 on the complete graph."""
        n = len(self.participants)
        return n - 1 if self.neighbours is None else min(self.neighbours, n - 1)

    @cached_property
    def _graph(self) -> dict[int, tuple[int, ...]]:
        ids = self.participants
        if self.degree == len(ids) - 1:
            return {i: tuple(j for j in ids if j != i) for i in ids}
        ring = sorted(ids, key=lambda i: hashlib.sha256(_DOMAIN + b"graph" + self.round_id + _id_bytes(i)).digest())
        n, half = len(ring), self.degree // 2
        return {
            i: tuple(sorted(ring[(pos + d) % n] for d in range(-half, half + 1) if d)) for pos, i in enumerate(ring)
        }

    @cached_property
    def _share_indices(self) -> dict[int, dict[int, int]]:
        # Owner → holder → Shamir x-coordinate: holders numbered 1..k+1 in id order of the closed neighbourhood.
        return {
            owner: {holder: x for x, holder in enumerate(sorted((owner, *peers)), start=1)}
            for owner, peers in self._graph.items()
        }


@dataclass(frozen=True)
class Advert:
    """Step 1, client → server → everyone: a client's two public keys and its commitment to `b`."""

    round_id: bytes
    sender: int
    c_pk: bytes
    s_pk: bytes
    b_commitment: bytes


@dataclass(frozen=True)
class EncryptedShares:
    """Step 3, client → server → one neighbour: nonce ‖ AES-GCM(share of b ‖ share of the s_sk seed).

    The ciphertext is 60 bytes: a 12-byte nonce, the 32-byte payload (16-byte share of `b`, 16-byte share of
    the seed of `s_sk`) and the 16-byte tag.
    """

    round_id: bytes
    sender: int
    recipient: int
    ciphertext: bytes


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Step 4, client → server: the client's quantised update plus its masks, mod 2^32."""

    round_id: bytes
    sender: int
    masked: Words


@dataclass(frozen=True)
class UnmaskRequest:
    """Step 5, server → survivors: who sent a masked input and who shared keys but did not."""

    round_id: bytes
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]


@dataclass(frozen=True)
class RevealedShare:
    """One holder's share of a secret of client `owner`.

    A share of `b`, or of the 16-byte seed `s_sk` is derived from, is one 16-byte Shamir share.
    """

    owner: int
    share: bytes


@dataclass(frozen=True)
class UnmaskResponse:
    """Step 5, survivor → server: its shares of the survivors' `b` and of the dropped clients' `s_sk`."""

    round_id: bytes
    sender: int
    b_shares: tuple[RevealedShare, ...]
    s_sk_shares: tuple[RevealedShare, ...]


@dataclass(frozen=True, eq=False)
class AggregateResult:
    """Step 6: the survivors' summed quantised updates (mod 2^32) and the same sum decoded to floats."""

    round_id: bytes
    survivors: tuple[int, ...]
    quantised_sum: Words
    total: npt.NDArray[np.float64]

    @property
    def count(self) -> int:
        """How many updates the sum holds."""
        return len(self.survivors)


@dataclass(frozen=True)
class SecretShares:
    """Step 6, inside the server: per owner, t or more Shamir shares (x → share) of each secret the sum needs.

    `b` holds the survivors' self-mask seeds, `s_seeds` the seeds of the dropped clients' mask keys.
    """

    threshold: int
    b: Mapping[int, Mapping[int, bytes]]
    s_seeds: Mapping[int, Mapping[int, bytes]]

    def chunks(self, count: int) -> list[SecretShares]:
        """Split into `count` (>= 1) parts of about equal work, each rebuildable on its own, in any process."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        secrets = [("b", owner) for owner in sorted(self.b)] + [("s", owner) for owner in sorted(self.s_seeds)]
        parts = []
        for part in range(count):
            mine = secrets[part::count]
            b = {owner: self.b[owner] for kind, owner in mine if kind == "b"}
            s_seeds = {owner: self.s_seeds[owner] for kind, owner in mine if kind == "s"}
            parts.append(SecretShares(self.threshold, b, s_seeds))
        return parts


@dataclass(frozen=True)
class RebuiltSecrets:
    """Step 6, inside the server: the secrets `rebuild_secrets` recovered, not yet checked against the adverts."""

    b: Mapping[int, bytes]
    s_seeds: Mapping[int, bytes]

    @staticmethod
    def merge(parts: Iterable[RebuiltSecrets]) -> RebuiltSecrets:
        """One set of secrets from the results of `rebuild_secrets` on the chunks of one `SecretShares`."""
        b: dict[int, bytes] = {}
        s_seeds: dict[int, bytes] = {}
        for part in parts:
            b.update(part.b)
            s_seeds.update(part.s_seeds)
        return RebuiltSecrets(b, s_seeds)


def rebuild_secrets(shares: SecretShares) -> RebuiltSecrets:
    """Shamir-combine each secret from t of its shares: the costly part of unmasking, one combine per secret.

    A pure function of plain values, so `SecretShares.chunks` can be rebuilt in parallel workers.
    """
    t = shares.threshold
    return RebuiltSecrets(
        b={owner: _reconstruct(s, t, _SEED_BYTES, f"client {owner}'s self-mask seed") for owner, s in shares.b.items()},
        s_seeds={
            owner: _reconstruct(s, t, _S_SEED_BYTES, f"dropped client {owner}'s mask key")
            for owner, s in shares.s_seeds.items()
        },
    )


def neighbours_of(config: RoundConfig, client: int) -> tuple[int, ...]:
    """The ids `client` exchanges shares and pairwise masks with, in increasing order (never itself)."""
    _require_participant(config, client, "client")
    return config._graph[client]


def clip_update(update: npt.NDArray[Any], quantisation: Quantisation) -> npt.NDArray[np.float64]:
    """Scale a 1-D float update into the L2 ball (if set), then clip each coordinate to [-clip, clip]."""
    if not isinstance(update, np.ndarray) or update.ndim != 1 or update.dtype.kind != "f":
        raise MalformedMessage("an update must be a 1-D float array")
    x = update.astype(np.float64)
    if not np.isfinite(x).all():
        raise MalformedMessage("an update holds NaN or infinite values")
    if quantisation.l2_clip is not None:
        norm = float(np.linalg.norm(x))
        if norm > quantisation.l2_clip:
            x *= quantisation.l2_clip / norm
    return np.clip(x, -quantisation.clip, quantisation.clip)


def quantise(update: npt.NDArray[Any], quantisation: Quantisation) -> Words:
    """Clip `update` and round it to signed integers in units of 2^-scale_bits, stored mod 2^32."""
    scaled = np.rint(clip_update(update, quantisation) * quantisation.scale)
    quantised: Words = scaled.astype(np.int32).view(np.uint32)
    return quantised


def dequantise(total: Words, quantisation: Quantisation) -> npt.NDArray[np.float64]:
    """Read a (summed) quantised vector as signed int32 and scale it back to floats."""
    return total.view(np.int32).astype(np.float64) / quantisation.scale


class ClientRound:
    """One client's side of one round; its secrets are kept as bytes, so it pickles between steps."""

    def __init__(self, config: RoundConfig, me: int) -> None:
        _require_participant(config, me, "client")
        self.config = config
        self.me = me
        self._c_sk = X25519PrivateKey.generate().private_bytes_raw()
        self._s_seed = os.urandom(_S_SEED_BYTES)
        self._s_sk = _mask_key(config.round_id, me, self._s_seed)
        self._b = os.urandom(_SEED_BYTES)
        self._advert = Advert(
            round_id=config.round_id,
            sender=me,
            c_pk=_public_key(self._c_sk),
            s_pk=_public_key(self._s_sk),
            b_commitment=_commit(config.round_id, me, self._b),
        )
        self._next_step = "share_keys"
        self._peers: dict[int, Advert] = {}  # neighbours that advertised
        self._channel_keys: dict[int, bytes] = {}  # AES-GCM key shared with each such neighbour
        self._held: dict[int, bytes] = {}  # owner → my decrypted share payload of its b and s_sk, mine included

    def advertise(self) -> Advert:
        """Step 1: this client's public keys and commitment to its self-mask seed."""
        return self._advert

    def share_keys(self, adverts: Iterable[Advert]) -> tuple[EncryptedShares, ...]:
        """Step 3: Shamir-share `b` and `s_sk` over the closed neighbourhood; one ciphertext per neighbour."""
        self._expect("share_keys")
        config = self.config
        holders = config._share_indices[self.me]
        # Only the closed neighbourhood matters to this client; the server has checked the rest.
        by_sender = _index_adverts(config, (a for a in adverts if _is_id(a.sender) and a.sender in holders))
        if by_sender.get(self.me) != self._advert:
            raise ProtocolViolation(f"the relayed adverts do not carry client {self.me}'s own advert unchanged")
        peers = {j: by_sender[j] for j in neighbours_of(config, self.me) if j in by_sender}
        if len(peers) + 1 < config.threshold:
            raise RoundAborted(
                f"only {len(peers) + 1} of client {self.me}'s closed neighbourhood advertised; "
                f"{config.threshold} needed"
            )
        c_sk = X25519PrivateKey.from_private_bytes(self._c_sk)
        keys = {j: _derive(_exchange(c_sk, a.c_pk, j), b"share-key", config.round_id) for j, a in peers.items()}
        b_shares = _split(self._b, config.threshold, len(holders))
        s_shares = _split(self._s_seed, config.threshold, len(holders))
        outgoing = []
        for holder, x in holders.items():
            payload = b_shares[x - 1] + s_shares[x - 1]
            if holder == self.me:
                self._held[self.me] = payload
            elif holder in peers:
                ad = _share_ad(config.round_id, self.me, holder)
                nonce = os.urandom(_NONCE_BYTES)
                ciphertext = nonce + AESGCM(keys[holder]).encrypt(nonce, payload, ad)
                outgoing.append(EncryptedShares(config.round_id, self.me, holder, ciphertext))
        self._peers, self._channel_keys = peers, keys
        self._next_step = "masked_input"
        return tuple(outgoing)

    def masked_input(self, update: npt.NDArray[Any], shares: Iterable[EncryptedShares]) -> MaskedInput:
        """Step 4: decrypt the shares neighbours sent, then mask the quantised update with b and the pairwise seeds."""
        self._expect("masked_input")
        config = self.config
        if not isinstance(update, np.ndarray) or update.shape != (config.vector_length,):
            raise MalformedMessage(f"the update must be an array of shape ({config.vector_length},)")
        masked = quantise(update, config.quantisation)
        received: dict[int, bytes] = {}
        for message in shares:
            _require_round(config, message.round_id)
            if message.recipient != self.me:
                raise MalformedMessage(f"shares addressed to client {message.recipient!r} reached client {self.me}")
            sender = message.sender
            if sender not in self._peers:
                raise MalformedMessage(f"client {sender!r} is not an advertised neighbour of client {self.me}")
            if sender in received:
                raise MalformedMessage(f"two sets of shares from client {sender}")
            received[sender] = self._decrypt(message)
        if len(received) + 1 < config.threshold:
            raise RoundAborted(
                f"only {len(received) + 1} of client {self.me}'s closed neighbourhood shared keys; "
                f"{config.threshold} needed"
            )
        masked += _mask(_self_mask_key(config.round_id, self.me, self._b), config.vector_length)
        s_sk = X25519PrivateKey.from_private_bytes(self._s_sk)
        for j in received:
            seed = _pairwise_seed(s_sk, self._peers[j].s_pk, config.round_id, self.me, j)
            if j > self.me:
                masked += _mask(seed, config.vector_length)
            else:
                masked -= _mask(seed, config.vector_length)
        self._held.update(received)
        self._next_step = "unmask"
        return MaskedInput(config.round_id, self.me, masked)

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Step 5: check the server's lists, then reveal shares of survivors' `b` and dropped clients' `s_sk`."""
        self._expect("unmask")
        config = self.config
        _require_round(config, request.round_id)
        survivors = _id_set(config, request.survivors, "survivor")
        dropped = _id_set(config, request.dropped, "dropped client")
        both = survivors & dropped
        if both:
            raise ProtocolViolation(f"asked for both the b and the s_sk shares of client {min(both)}")
        if self.me not in survivors:
            raise ProtocolViolation(f"client {self.me} sent its masked input but is not listed as a survivor")
        neighbours = set(neighbours_of(config, self.me))
        listed, seen = (survivors | dropped) & neighbours, set(self._held) - {self.me}
        if listed != seen:
            odd = min(listed ^ seen)
            raise ProtocolViolation(
                f"the server's lists contradict client {self.me}'s view of neighbour {odd} "
                f"({'listed' if odd in listed else 'not listed'}, {'shared' if odd in seen else 'did not share'})"
            )
        alive = len(survivors & (neighbours | {self.me}))
        if alive < config.threshold:
            raise RoundAborted(
                f"only {alive} of client {self.me}'s closed neighbourhood survived; {config.threshold} needed"
            )
        self._next_step = "nothing (round finished)"
        return UnmaskResponse(
            round_id=config.round_id,
            sender=self.me,
            b_shares=tuple(
                RevealedShare(owner, self._held[owner][:_B_SHARE_BYTES])
                for owner in sorted(self._held)
                if owner in survivors
            ),
            s_sk_shares=tuple(
                RevealedShare(owner, self._held[owner][_B_SHARE_BYTES:])
                for owner in sorted(self._held)
                if owner in dropped
            ),
        )

    def _expect(self, step: str) -> None:
        if self._next_step != step:
            raise ProtocolViolation(f"client {self.me}: {step} called out of order; expected {self._next_step}")

    def _decrypt(self, message: EncryptedShares) -> bytes:
        ciphertext = message.ciphertext
        if not isinstance(ciphertext, bytes) or len(ciphertext) != _NONCE_BYTES + _PAYLOAD_BYTES + _TAG_BYTES:
            raise MalformedMessage(f"shares from client {message.sender} have the wrong length")
        ad = _share_ad(self.config.round_id, message.sender, self.me)
        try:
            aead = AESGCM(self._channel_keys[message.sender])
            return aead.decrypt(ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], ad)
        except InvalidTag:
            raise ShareDecryptionFailed(f"shares from client {message.sender} fail authentication") from None


class ServerRound:
    """The server's side of one round: relays adverts and shares, sums masked inputs, removes the masks.

    Each step validates all its input before changing any state, so a caller may drop an offending
    client's messages and call the step again.
    """

    def __init__(self, config: RoundConfig) -> None:
        self.config = config
        self._next_step = "collect_adverts"
        self._adverts: dict[int, Advert] = {}
        self._shared: frozenset[int] = frozenset()
        self._request = UnmaskRequest(config.round_id, (), ())
        self._total: Words = np.zeros(config.vector_length, dtype=np.uint32)

    def collect_adverts(self, adverts: Iterable[Advert]) -> tuple[Advert, ...]:
        """Step 1: check the adverts and return them, in id order, for broadcast to every client."""
        self._expect("collect_adverts")
        by_sender = _index_adverts(self.config, adverts)
        if len(by_sender) < self.config.threshold:
            raise RoundAborted(f"only {len(by_sender)} clients advertised; {self.config.threshold} needed")
        self._adverts = by_sender
        self._next_step = "route_shares"
        return tuple(by_sender[i] for i in sorted(by_sender))

    def route_shares(self, shares: Iterable[EncryptedShares]) -> dict[int, tuple[EncryptedShares, ...]]:
        """Step 3: deliver ciphertexts per recipient; a sender must address every neighbour that advertised."""
        self._expect("route_shares")
        config = self.config
        sent: dict[int, dict[int, EncryptedShares]] = {}
        for message in shares:
            _require_round(config, message.round_id)
            sender, recipient = message.sender, message.recipient
            if sender not in self._adverts:
                raise MalformedMessage(f"shares from client {sender!r}, which did not advertise")
            if recipient not in self._adverts or recipient not in config._graph[sender]:
                raise MalformedMessage(
                    f"client {sender} addressed shares to {recipient!r}, not an advertised neighbour"
                )
            if recipient in sent.setdefault(sender, {}):
                raise MalformedMessage(f"client {sender} sent two sets of shares to client {recipient}")
            sent[sender][recipient] = message
        for sender, by_recipient in sent.items():
            missing = {j for j in config._graph[sender] if j in self._adverts} - set(by_recipient)
            if missing:
                raise MalformedMessage(f"client {sender} sent no shares to neighbour {min(missing)}")
        inboxes: dict[int, list[EncryptedShares]] = {i: [] for i in self._adverts}
        for by_recipient in sent.values():
            for recipient, message in by_recipient.items():
                inboxes[recipient].append(message)
        self._shared = frozenset(sent)
        self._next_step = "collect_masked_inputs"
        return {i: tuple(inbox) for i, inbox in inboxes.items()}

    def collect_masked_inputs(self, inputs: Iterable[MaskedInput]) -> UnmaskRequest:
        """Step 4→5: sum the masked inputs and name survivors and dropped; abort if their masks cannot be removed."""
        self._expect("collect_masked_inputs")
        config = self.config
        received: dict[int, Words] = {}
        for message in inputs:
            _require_round(config, message.round_id)
            if message.sender not in self._shared:
                raise MalformedMessage(f"masked input from client {message.sender!r}, which did not share keys")
            if message.sender in received:
                raise MalformedMessage(f"two masked inputs from client {message.sender}")
            masked = message.masked
            if (
                not isinstance(masked, np.ndarray)
                or masked.dtype != np.uint32
                or masked.shape != (config.vector_length,)
            ):
                raise MalformedMessage(f"client {message.sender}'s masked input is not uint32[{config.vector_length}]")
            received[message.sender] = masked
        survivors = set(received)
        dropped = self._shared - survivors
        if len(survivors) < config.threshold:
            raise RoundAborted(f"only {len(survivors)} clients sent masked inputs; {config.threshold} needed")
        for i in sorted(survivors):
            alive = len(survivors & (set(config._graph[i]) | {i}))
            if alive < config.threshold:
                raise RoundAborted(
                    f"client {i} has only {alive} survivors in its neighbourhood; {config.threshold} needed"
                )
        for j in sorted(dropped):
            alive = len(survivors & set(config._graph[j]))
            if 0 < alive < config.threshold:
                raise RoundAborted(
                    f"dropped client {j} has only {alive} surviving neighbours; {config.threshold} needed"
                )
        for masked in received.values():
            self._total += masked
        self._request = UnmaskRequest(config.round_id, tuple(sorted(survivors)), tuple(sorted(dropped)))
        self._next_step = "aggregate"
        return self._request

    def aggregate(self, responses: Iterable[UnmaskResponse]) -> AggregateResult:
        """Step 6: rebuild and check the secrets, remove all masks, and return the survivors' sum.

        The same as `finish(rebuild_secrets(collect_unmask_responses(responses)))`; a caller with workers to
        spare may run `rebuild_secrets` (nearly all of the step's cost) on chunks of the shares in parallel.
        """
        return self.finish(rebuild_secrets(self.collect_unmask_responses(responses)))

    def collect_unmask_responses(self, responses: Iterable[UnmaskResponse]) -> SecretShares:
        """Step 6a: check and file the revealed shares; abort if any needed secret has fewer than t of them.

        Only what the sum needs is kept: the `b` of every survivor and the `s_sk` seed of every dropped client
        that some survivor masked with.
        """
        self._expect("aggregate")
        config = self.config
        survivors, dropped = set(self._request.survivors), set(self._request.dropped)
        b_shares: dict[int, dict[int, bytes]] = {i: {} for i in survivors}
        s_shares: dict[int, dict[int, bytes]] = {j: {} for j in dropped}
        responders: set[int] = set()
        for response in responses:
            _require_round(config, response.round_id)
            holder = response.sender
            if holder not in survivors or holder in responders:
                raise MalformedMessage(f"unexpected or repeated unmask response from client {holder!r}")
            responders.add(holder)
            self._file_shares(holder, response.b_shares, b_shares, "b", _B_SHARE_BYTES)
            self._file_shares(holder, response.s_sk_shares, s_shares, "s_sk", _S_SK_SHARE_BYTES)
        needed = {j: shares for j, shares in s_shares.items() if survivors & set(config._graph[j])}
        for owner, shares in sorted(b_shares.items()):
            _require_enough(shares, config.threshold, f"client {owner}'s self-mask seed")
        for owner, shares in sorted(needed.items()):
            _require_enough(shares, config.threshold, f"dropped client {owner}'s mask key")
        self._next_step = "finish"
        return SecretShares(config.threshold, b_shares, needed)

    def finish(self, secrets: RebuiltSecrets) -> AggregateResult:
        """Step 6c: check the rebuilt secrets against the adverts, remove all masks, and return the sum."""
        self._expect("finish")
        config = self.config
        survivors = set(self._request.survivors)
        dropped = {j for j in self._request.dropped if survivors & set(config._graph[j])}
        if set(secrets.b) != survivors or set(secrets.s_seeds) != dropped:
            raise ProtocolViolation("the rebuilt secrets are not those of this round's survivors and dropped clients")
        total = self._total.copy()
        for i in sorted(survivors):
            b = secrets.b[i]
            if _commit(config.round_id, i, b) != self._adverts[i].b_commitment:
                raise RoundAborted(f"client {i}'s rebuilt self-mask seed does not match its commitment (bad share)")
            total -= _mask(_self_mask_key(config.round_id, i, b), config.vector_length)
        for j in sorted(dropped):
            s_sk = X25519PrivateKey.from_private_bytes(_mask_key(config.round_id, j, secrets.s_seeds[j]))
            if s_sk.public_key().public_bytes_raw() != self._adverts[j].s_pk:
                raise RoundAborted(f"dropped client {j}'s rebuilt mask key does not match its public key (bad share)")
            for i in sorted(survivors & set(config._graph[j])):
                mask = _mask(_pairwise_seed(s_sk, self._adverts[i].s_pk, config.round_id, j, i), config.vector_length)
                # Survivor i added this mask if j > i and subtracted it otherwise; undo that.
                if j > i:
                    total -= mask
                else:
                    total += mask
        self._next_step = "nothing (round finished)"
        return AggregateResult(
            round_id=config.round_id,
            survivors=self._request.survivors,
            quantised_sum=total,
            total=dequantise(total, config.quantisation),
        )

    def _expect(self, step: str) -> None:
        if self._next_step != step:
            raise ProtocolViolation(f"server: {step} called out of order; expected {self._next_step}")

    def _file_shares(
        self,
        holder: int,
        revealed: Iterable[RevealedShare],
        into: dict[int, dict[int, bytes]],
        secret: str,
        share_bytes: int,
    ) -> None:
        for item in revealed:
            owner = item.owner
            if owner not in into:
                raise MalformedMessage(f"client {holder} revealed a {secret} share of client {owner!r}, not requested")
            x = self.config._share_indices[owner].get(holder)
            if x is None:
                raise MalformedMessage(f"client {holder} holds no {secret} share of client {owner}")
            if x in into[owner]:
                raise MalformedMessage(f"client {holder} revealed two {secret} shares of client {owner}")
            into[owner][x] = _require_bytes(item.share, share_bytes, f"a {secret} share from client {holder}")


def run_round(
    updates: Mapping[int, npt.NDArray[Any]], config: RoundConfig, drop_after_sharing: Collection[int] = frozenset()
) -> AggregateResult:
    """Drive one round in-process: clients in `updates` take part, those in `drop_after_sharing` vanish after step 3."""
    strangers = set(drop_after_sharing) - set(updates)
    if strangers:
        raise MalformedMessage(f"client {min(strangers)!r} is to drop out but has no update")
    clients = {i: ClientRound(config, i) for i in sorted(updates)}
    server = ServerRound(config)
    adverts = server.collect_adverts(client.advertise() for client in clients.values())
    inboxes = server.route_shares(message for client in clients.values() for message in client.share_keys(adverts))
    request = server.collect_masked_inputs(
        client.masked_input(updates[i], inboxes[i]) for i, client in clients.items() if i not in drop_after_sharing
    )
    return server.aggregate(clients[i].unmask(request) for i in request.survivors)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_ID


def _is_positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _id_bytes(i: int) -> bytes:
    return i.to_bytes(4, "big")


def _require_participant(config: RoundConfig, i: object, what: str) -> None:
    if not _is_id(i) or i not in config._share_indices:
        raise MalformedMessage(f"{what} {i!r} is not a participant of this round")


def _require_round(config: RoundConfig, round_id: object) -> None:
    if round_id != config.round_id:
        shown = round_id.hex()[:16] if isinstance(round_id, bytes) else repr(round_id)
        raise WrongRound(f"message for round {shown}…, this is round {config.round_id.hex()[:16]}…")


def _require_bytes(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise MalformedMessage(f"{what} must be {length} bytes")
    return value


def _id_set(config: RoundConfig, ids: Iterable[int], what: str) -> set[int]:
    seen: set[int] = set()
    for i in ids:
        _require_participant(config, i, what)
        if i in seen:
            raise MalformedMessage(f"{what} {i} listed twice")
        seen.add(i)
    return seen


def _index_adverts(config: RoundConfig, adverts: Iterable[Advert]) -> dict[int, Advert]:
    by_sender: dict[int, Advert] = {}
    for advert in adverts:
        _require_round(config, advert.round_id)
        _require_participant(config, advert.sender, "advert sender")
        if advert.sender in by_sender:
            raise MalformedMessage(f"two adverts from client {advert.sender}")
        for value, what in ((advert.c_pk, "c_pk"), (advert.s_pk, "s_pk"), (advert.b_commitment, "b_commitment")):
            _require_bytes(value, _KEY_BYTES, f"client {advert.sender}'s {what}")
        by_sender[advert.sender] = advert
    keys = [key for advert in by_sender.values() for key in (advert.c_pk, advert.s_pk)]
    if len(set(keys)) != len(keys):
        raise MalformedMessage("two adverts carry the same public key")
    return by_sender


def _public_key(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def _exchange(private: X25519PrivateKey, peer_public: bytes, peer: int) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:  # a low-order point gives an all-zero secret, which cryptography refuses
        raise MalformedMessage(f"client {peer}'s public key is invalid") from None


def _derive(secret: bytes, label: bytes, context: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=_DOMAIN + label + context).derive(secret)


def _pairwise_seed(my_s_sk: X25519PrivateKey, their_s_pk: bytes, round_id: bytes, me: int, them: int) -> bytes:
    lo, hi = sorted((me, them))
    shared = _exchange(my_s_sk, their_s_pk, them)
    return _derive(shared, b"pairwise-mask", round_id + _id_bytes(lo) + _id_bytes(hi))


def _mask_key(round_id: bytes, owner: int, seed: bytes) -> bytes:
    # s_sk is derived from a 16-byte seed so that one Shamir split (of the seed) shares it: 128 bits of entropy,
    # the security level of X25519 itself. Bound to the round and the owner like every other derived key.
    return _derive(seed, b"mask-key", round_id + _id_bytes(owner))


def _self_mask_key(round_id: bytes, owner: int, b: bytes) -> bytes:
    # The 128-bit seed b is stretched to a 256-bit ChaCha20 key. Binding the round and the owner means that even a
    # reused seed would give unrelated masks in another round or for another client.
    return _derive(b, b"self-mask-key", round_id + _id_bytes(owner))


def _commit(round_id: bytes, owner: int, b: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + b"self-mask-commitment" + round_id + _id_bytes(owner) + b).digest()


def _share_ad(round_id: bytes, sender: int, recipient: int) -> bytes:
    return _DOMAIN + b"shares" + round_id + _id_bytes(sender) + _id_bytes(recipient)


def _mask(seed: bytes, length: int) -> Words:
    # Every key is fresh per round and party (self-mask keys come from a fresh random b and, like the pairwise
    # seeds, are bound to the round id and the clients), so one fixed nonce never repeats a keystream.
    words = np.empty(length, dtype=np.dtype("<u4"))
    encryptor = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    encryptor.update_into(_zeros(4 * length), words.data.cast("B"))
    return words


@functools.lru_cache(maxsize=4)
def _zeros(size: int) -> bytes:
    # The plaintext the keystream is read through: one zero buffer per vector length, not one per mask.
    return bytes(size)


def _split(secret: bytes, threshold: int, holders: int) -> list[bytes]:
    """Shares x = 1..holders of a secret of 16 bytes or a multiple: the 16-byte Shamir shares of its chunks, joined.

    A share is as long as the secret; each 16-byte chunk costs one pycryptodome split.
    """
    chunks = [
        Shamir.split(threshold, holders, secret[c : c + _CHUNK_BYTES], ssss=False)
        for c in range(0, len(secret), _CHUNK_BYTES)
    ]
    return [b"".join(share for _, share in row) for row in zip(*chunks, strict=True)]


def _require_enough(shares: Mapping[int, bytes], threshold: int, what: str) -> None:
    # pycryptodome's combine returns a wrong secret, silently, when given fewer than `threshold` shares.
    if len(shares) < threshold:
        raise RoundAborted(f"only {len(shares)} of the {threshold} shares needed for {what} arrived")


def _reconstruct(shares: Mapping[int, bytes], threshold: int, size: int, what: str) -> bytes:
    """The `size`-byte secret from at least `threshold` shares made by `_split`; one combine per 16-byte chunk."""
    _require_enough(shares, threshold, what)
    chosen = sorted(shares.items())[:threshold]
    return b"".join(
        Shamir.combine([(x, share[c : c + _CHUNK_BYTES]) for x, share in chosen], ssss=False)
        for c in range(0, size, _CHUNK_BYTES)
    )
