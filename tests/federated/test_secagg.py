"""Secure aggregation: correct sums with and without dropouts, the neighbour graph, masking, and every refusal."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import time
from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from marketplace.ml.federated.secagg import (
    Advert,
    ClientRound,
    ConfigError,
    EncryptedShares,
    MalformedMessage,
    MaskedInput,
    ProtocolViolation,
    Quantisation,
    RebuiltSecrets,
    RevealedShare,
    RoundAborted,
    RoundConfig,
    SecAggError,
    ServerRound,
    ShareDecryptionFailed,
    UnmaskRequest,
    WrongRound,
    clip_update,
    dequantise,
    neighbours_of,
    quantise,
    rebuild_secrets,
    run_round,
)

Vector = npt.NDArray[Any]


def _round_id(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def _config(
    n: int = 8,
    threshold: int = 5,
    neighbours: int | None = None,
    length: int = 500,
    name: str = "round-1",
    quantisation: Quantisation | None = None,
) -> RoundConfig:
    q = quantisation or Quantisation()
    return RoundConfig(_round_id(name), tuple(range(1, n + 1)), threshold, neighbours, length, q)


def _updates(config: RoundConfig, seed: int = 0) -> dict[int, Vector]:
    rng = np.random.default_rng(seed)
    # A spread of 0.8 puts a fair share of coordinates beyond clip=1, so clipping is exercised too.
    return {i: rng.normal(0.0, 0.8, config.vector_length).astype(np.float32) for i in config.participants}


def _plain_sum(updates: dict[int, Vector], who: Collection[int]) -> Vector:
    """The sum of `who`'s updates clipped to [-1, 1], computed in the clear."""
    total: Vector = np.sum([np.clip(updates[i].astype(np.float64), -1.0, 1.0) for i in who], axis=0)
    return total


def _tolerance(config: RoundConfig) -> float:
    # Each client's rounding is off by at most half a unit.
    return len(config.participants) * 0.5 / config.quantisation.scale + 1e-9


def _through_masking(
    config: RoundConfig, updates: dict[int, Vector], drop: Collection[int] = ()
) -> tuple[dict[int, ClientRound], ServerRound, UnmaskRequest]:
    clients = {i: ClientRound(config, i) for i in updates}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    inboxes = server.route_shares(m for c in clients.values() for m in c.share_keys(adverts))
    request = server.collect_masked_inputs(
        c.masked_input(updates[i], inboxes[i]) for i, c in clients.items() if i not in drop
    )
    return clients, server, request


def _until_shares(config: RoundConfig) -> tuple[dict[int, ClientRound], dict[int, tuple[EncryptedShares, ...]]]:
    clients = {i: ClientRound(config, i) for i in config.participants}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    return clients, server.route_shares(m for c in clients.values() for m in c.share_keys(adverts))


# --- sums ---------------------------------------------------------------------------------------------------------


def test_runRound_completeGraphEqualsPlainSumOfClippedUpdates() -> None:
    config = _config()
    updates = _updates(config)
    result = run_round(updates, config)
    assert result.survivors == config.participants
    assert result.count == 8
    expected = _plain_sum(updates, config.participants)
    assert np.abs(result.total - expected).max() <= _tolerance(config)
    # Clipping mattered: the unclipped sum is measurably different.
    assert np.abs(result.total - np.sum(list(updates.values()), axis=0)).max() > 0.1


def test_runRound_survivesNMinusTDropouts() -> None:
    config = _config(n=8, threshold=5)
    updates = _updates(config, seed=1)
    result = run_round(updates, config, drop_after_sharing={2, 5, 7})
    assert result.survivors == (1, 3, 4, 6, 8)
    expected = _plain_sum(updates, result.survivors)
    assert np.abs(result.total - expected).max() <= _tolerance(config)


def test_runRound_abortsWhenNMinusTPlusOneDrop() -> None:
    config = _config(n=8, threshold=5)
    with pytest.raises(RoundAborted, match="only 4 clients sent masked inputs; 5 needed"):
        run_round(_updates(config), config, drop_after_sharing={2, 4, 5, 7})


def test_runRound_clientsThatNeverAdvertisedAreLeftOut() -> None:
    config = _config(n=8, threshold=5)
    updates = {i: u for i, u in _updates(config, seed=2).items() if i not in (3, 6)}
    result = run_round(updates, config, drop_after_sharing={8})
    assert result.survivors == (1, 2, 4, 5, 7)
    expected = _plain_sum(updates, result.survivors)
    assert np.abs(result.total - expected).max() <= _tolerance(config)


def test_runRound_neighbourGraphWithDropouts() -> None:
    config = _config(n=30, threshold=5, neighbours=8, length=2_000)
    updates = _updates(config, seed=3)
    dropped = {4, 17, 29}
    result = run_round(updates, config, drop_after_sharing=dropped)
    assert set(result.survivors) == set(config.participants) - dropped
    expected = _plain_sum(updates, result.survivors)
    assert np.abs(result.total - expected).max() <= _tolerance(config)


def test_runRound_neighbourGraphAbortsWhenANeighbourhoodIsTooThin() -> None:
    config = _config(n=30, threshold=5, neighbours=8)
    # Five of client 1's eight neighbours drop: its closed neighbourhood keeps 4 < 5 survivors.
    dropped = set(neighbours_of(config, 1)[:5])
    with pytest.raises(RoundAborted, match=r"survivors in its neighbourhood|surviving neighbours"):
        run_round(_updates(config), config, drop_after_sharing=dropped)


def test_runRound_l2ClipBoundsEachContribution() -> None:
    config = _config(n=4, threshold=3, length=100, quantisation=Quantisation(clip=1.0, l2_clip=0.5))
    updates = _updates(config, seed=4)
    result = run_round(updates, config)
    assert all(np.linalg.norm(clip_update(u, config.quantisation)) <= 0.5 + 1e-12 for u in updates.values())
    # Every update here is longer than 0.5, so each is scaled onto the sphere; no coordinate then exceeds 1.
    expected = np.sum(
        [u.astype(np.float64) * (0.5 / np.linalg.norm(u.astype(np.float64))) for u in updates.values()], axis=0
    )
    assert np.abs(result.total - expected).max() <= _tolerance(config)


def test_clientRound_picklesBetweenSteps() -> None:
    config = _config(n=5, threshold=3, length=200)
    updates = _updates(config, seed=5)

    def hop(client: ClientRound) -> ClientRound:
        restored = pickle.loads(pickle.dumps(client))  # noqa: S301 -- our own object, as a process pool would ship it
        assert isinstance(restored, ClientRound)
        return restored

    clients = {i: hop(ClientRound(config, i)) for i in config.participants}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    inboxes = server.route_shares(m for c in clients.values() for m in c.share_keys(adverts))
    clients = {i: hop(c) for i, c in clients.items()}
    request = server.collect_masked_inputs(c.masked_input(updates[i], inboxes[i]) for i, c in clients.items())
    clients = {i: hop(c) for i, c in clients.items()}
    result = server.aggregate(clients[i].unmask(request) for i in request.survivors)
    expected = _plain_sum(updates, config.participants)
    assert np.abs(result.total - expected).max() <= _tolerance(config)


# --- neighbour graph ----------------------------------------------------------------------------------------------


def test_neighboursOf_symmetricRegularAndDeterministicFromRoundId() -> None:
    config = _config(n=30, threshold=5, neighbours=8)
    graph = {i: neighbours_of(config, i) for i in config.participants}
    for i, peers in graph.items():
        assert len(set(peers)) == 8
        assert i not in peers
        assert all(i in graph[j] for j in peers)
    again = _config(n=30, threshold=5, neighbours=8)
    assert {i: neighbours_of(again, i) for i in again.participants} == graph
    other = _config(n=30, threshold=5, neighbours=8, name="round-2")
    assert {i: neighbours_of(other, i) for i in other.participants} != graph


def test_neighboursOf_completeGraphWhenDegreeReachesNMinusOne() -> None:
    for neighbours in (None, 7, 12):
        config = _config(n=8, threshold=5, neighbours=neighbours)
        assert neighbours_of(config, 3) == (1, 2, 4, 5, 6, 7, 8)


def test_neighboursOf_failsIfNotAParticipant() -> None:
    with pytest.raises(MalformedMessage, match="not a participant"):
        neighbours_of(_config(), 9)


# --- masking ------------------------------------------------------------------------------------------------------


def test_maskedInput_uncorrelatedWithUpdate() -> None:
    # 400k coordinates: the correlation of independent vectors has sd 0.0016, so 0.01 is a 6.3 sd bound.
    config = _config(n=3, threshold=2, length=400_000)
    updates = _updates(config, seed=6)
    clients, inboxes = _until_shares(config)
    masked = clients[1].masked_input(updates[1], inboxes[1]).masked
    x = updates[1].astype(np.float64)
    for view in (masked.astype(np.float64), masked.view(np.int32).astype(np.float64)):
        assert abs(np.corrcoef(x, view)[0, 1]) < 0.01
    # The masked words look uniform over the whole 32-bit range.
    assert abs(float(masked.mean()) / 2**32 - 0.5) < 0.01


def test_maskedInput_differsAcrossRoundsWithIdenticalInputs() -> None:
    config = _config(n=3, threshold=2, length=50_000)
    updates = _updates(config, seed=7)
    first = [_until_shares(config) for _ in range(2)]
    masked = [clients[1].masked_input(updates[1], inboxes[1]).masked for clients, inboxes in first]
    # Fresh 16-byte seeds every time: the two maskings agree on essentially no coordinate.
    assert np.mean(masked[0] == masked[1]) < 1e-3
    assert np.mean(masked[0] == quantise(updates[1], config.quantisation)) < 1e-3


def test_aggregate_toleratesSurvivorsThatVanishBeforeUnmasking() -> None:
    config = _config(n=8, threshold=5)
    updates = _updates(config, seed=9)
    clients, server, request = _through_masking(config, updates, drop={8})
    # Clients 2 and 6 sent masked inputs but no unmask response: their b comes from the others' shares.
    result = server.aggregate(clients[i].unmask(request) for i in (1, 3, 4, 5, 7))
    assert result.survivors == (1, 2, 3, 4, 5, 6, 7)
    expected = _plain_sum(updates, result.survivors)
    assert np.abs(result.total - expected).max() <= _tolerance(config)


def test_selfMask_isChaCha20OfTheSeedStretchedByHkdfBoundToRoundAndOwner() -> None:
    # The spec, rebuilt here from public messages alone: b is a 16-byte Shamir secret, committed to as
    # SHA-256(domain ‖ label ‖ round ‖ owner ‖ b), and the self-mask is the ChaCha20 keystream (zero nonce) of
    # HKDF-SHA256(b, no salt, info = domain ‖ label ‖ round ‖ owner). With nobody dropping, the pairwise masks
    # cancel, so Σ y − Σ x is exactly the sum of the self-masks.
    config = _config(n=3, threshold=2, length=1_000)
    updates = _updates(config, seed=10)
    clients = {i: ClientRound(config, i) for i in config.participants}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    inboxes = server.route_shares(m for c in clients.values() for m in c.share_keys(adverts))
    inputs = [c.masked_input(updates[i], inboxes[i]) for i, c in clients.items()]
    masked_sum = np.sum([m.masked for m in inputs], axis=0, dtype=np.uint32)
    request = server.collect_masked_inputs(inputs)
    responses = {i: clients[i].unmask(request) for i in request.survivors}
    expected = np.zeros(config.vector_length, dtype=np.uint32)
    for owner in config.participants:
        # On the complete graph over ids 1..n, holder h has Shamir x-coordinate h.
        shares = [(h, s.share) for h in (1, 2) for s in responses[h].b_shares if s.owner == owner]
        assert all(len(share) == 16 for _, share in shares)
        b = Shamir.combine(shares, ssss=False)
        context = config.round_id + owner.to_bytes(4, "big")
        commitment = hashlib.sha256(b"agora.secagg.v1/self-mask-commitment" + context + b).digest()
        assert commitment == clients[owner].advertise().b_commitment
        info = b"agora.secagg.v1/self-mask-key" + context
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(b)
        chacha20 = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
        expected += np.frombuffer(chacha20.update(bytes(4 * config.vector_length)), dtype="<u4")
    quantised_sum = np.sum([quantise(u, config.quantisation) for u in updates.values()], axis=0, dtype=np.uint32)
    np.testing.assert_array_equal(masked_sum - quantised_sum, expected)
    result = server.aggregate(responses.values())
    np.testing.assert_array_equal(result.quantised_sum, quantised_sum)


def test_shamir_threeSplitsPerClientAndOneCombinePerSurvivor(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"split": 0, "combine": 0}
    split, combine = Shamir.split, Shamir.combine

    def counting_split(*args: Any, **kwargs: Any) -> Any:
        calls["split"] += 1
        return split(*args, **kwargs)

    def counting_combine(*args: Any, **kwargs: Any) -> Any:
        calls["combine"] += 1
        return combine(*args, **kwargs)

    monkeypatch.setattr(Shamir, "split", staticmethod(counting_split))
    monkeypatch.setattr(Shamir, "combine", staticmethod(counting_combine))
    config = _config(n=8, threshold=5)
    updates = _updates(config, seed=11)
    result = run_round(updates, config, drop_after_sharing={8})
    assert np.abs(result.total - _plain_sum(updates, result.survivors)).max() <= _tolerance(config)
    # b and the seed of s_sk are one 16-byte secret each: 2 splits per client; 1 combine per survivor and per
    # dropped client.
    assert calls == {"split": 2 * 8, "combine": 7 + 1}


def test_unmasking_rebuiltInChunksAsInParallelWorkers() -> None:
    config = _config(n=10, threshold=3, neighbours=4)
    updates = _updates(config, seed=5)
    clients, server, request = _through_masking(config, updates, drop={2, 7})
    shares = server.collect_unmask_responses(clients[i].unmask(request) for i in request.survivors)
    # Only what the sum needs: every survivor's b and the s_sk seed of each dropped client (both had neighbours).
    assert sorted(shares.b) == list(request.survivors)
    assert sorted(shares.s_seeds) == [2, 7]
    parts = shares.chunks(3)
    owned = [(owner, "b") for part in parts for owner in part.b] + [(o, "s") for part in parts for o in part.s_seeds]
    assert sorted(owned) == sorted([(i, "b") for i in request.survivors] + [(2, "s"), (7, "s")])
    shipped = [pickle.loads(pickle.dumps(part)) for part in parts]  # noqa: S301 -- as a process pool would ship them
    rebuilt = [rebuild_secrets(part) for part in shipped]
    missing = RebuiltSecrets.merge(rebuilt[:2])
    with pytest.raises(ProtocolViolation, match="not those of this round"):
        server.finish(missing)
    result = server.finish(RebuiltSecrets.merge(rebuilt))
    assert np.abs(result.total - _plain_sum(updates, result.survivors)).max() <= _tolerance(config)


def test_shares_haveTheDocumentedSizes() -> None:
    config = _config(n=8, threshold=5)
    clients = {i: ClientRound(config, i) for i in config.participants}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    outgoing = [m for c in clients.values() for m in c.share_keys(adverts)]
    # 12-byte nonce, 16-byte share of b, 16-byte share of the s_sk seed, 16-byte tag.
    assert {len(m.ciphertext) for m in outgoing} == {60}
    inboxes = server.route_shares(outgoing)
    updates = _updates(config)
    request = server.collect_masked_inputs(c.masked_input(updates[i], inboxes[i]) for i, c in clients.items() if i != 8)
    response = clients[1].unmask(request)
    assert [s.owner for s in response.b_shares] == [1, 2, 3, 4, 5, 6, 7]
    assert {len(s.share) for s in response.b_shares} == {16}
    assert [(s.owner, len(s.share)) for s in response.s_sk_shares] == [(8, 16)]


# --- the Shamir guard ---------------------------------------------------------------------------------------------


def test_aggregate_refusesToReconstructFromFewerThanTShares() -> None:
    config = _config(n=8, threshold=5)
    clients, server, request = _through_masking(config, _updates(config))
    # All eight survived, but only four unmask responses reach the server: pycryptodome would "combine" them.
    responses = [clients[i].unmask(request) for i in (1, 2, 3, 4)]
    with pytest.raises(RoundAborted, match="only 4 of the 5 shares needed for client 1's self-mask seed"):
        server.aggregate(responses)


def test_aggregate_detectsTamperedSelfMaskShare() -> None:
    config = _config(n=8, threshold=5)
    clients, server, request = _through_masking(config, _updates(config))
    responses = [clients[i].unmask(request) for i in request.survivors]
    first = responses[0]
    shares = list(first.b_shares)
    shares[2] = RevealedShare(shares[2].owner, bytes([shares[2].share[0] ^ 1]) + shares[2].share[1:])
    responses[0] = dataclasses.replace(first, b_shares=tuple(shares))
    with pytest.raises(RoundAborted, match="client 3's rebuilt self-mask seed does not match its commitment"):
        server.aggregate(responses)


def test_aggregate_detectsTamperedMaskKeyShare() -> None:
    config = _config(n=8, threshold=5)
    clients, server, request = _through_masking(config, _updates(config), drop={8})
    responses = [clients[i].unmask(request) for i in request.survivors]
    first = responses[0]
    (share,) = first.s_sk_shares
    tampered = RevealedShare(8, bytes([share.share[0] ^ 1]) + share.share[1:])
    responses[0] = dataclasses.replace(first, s_sk_shares=(tampered,))
    with pytest.raises(RoundAborted, match="dropped client 8's rebuilt mask key does not match its public key"):
        server.aggregate(responses)


def test_aggregate_refusesSharesOfTheWrongLengthForTheirKind() -> None:
    config = _config(n=8, threshold=5)
    clients, server, request = _through_masking(config, _updates(config), drop={8})
    responses = [clients[i].unmask(request) for i in request.survivors]
    first = responses[0]
    (s_sk_share,) = first.s_sk_shares
    long_b = RevealedShare(first.b_shares[0].owner, first.b_shares[0].share + bytes(16))
    with pytest.raises(MalformedMessage, match="a b share from client 1 must be 16 bytes"):
        server.aggregate([dataclasses.replace(first, b_shares=(long_b, *first.b_shares[1:])), *responses[1:]])
    short_s_sk = RevealedShare(8, s_sk_share.share[:8])
    with pytest.raises(MalformedMessage, match="s_sk share from client 1 must be 16 bytes"):
        server.aggregate([dataclasses.replace(first, s_sk_shares=(short_s_sk,)), *responses[1:]])
    # The refusals changed nothing: the honest responses still aggregate.
    assert server.aggregate(responses).survivors == (1, 2, 3, 4, 5, 6, 7)


def test_maskedInput_refusesCiphertextOfTheWrongLength() -> None:
    config = _config(n=4, threshold=3)
    clients, inboxes = _until_shares(config)
    message = inboxes[1][0]
    for ciphertext in (message.ciphertext[:-16], message.ciphertext + bytes(16)):
        with pytest.raises(MalformedMessage, match=f"shares from client {message.sender} have the wrong length"):
            clients[1].masked_input(_updates(config)[1], [dataclasses.replace(message, ciphertext=ciphertext)])


def test_aggregate_refusesSharesItDidNotAskFor() -> None:
    config = _config(n=8, threshold=5)
    clients, server, request = _through_masking(config, _updates(config), drop={8})
    responses = [clients[i].unmask(request) for i in request.survivors]
    with pytest.raises(MalformedMessage, match="repeated unmask response from client 1"):
        server.aggregate([*responses, responses[0]])
    wrong = RevealedShare(2, responses[0].b_shares[1].share)
    responses[0] = dataclasses.replace(responses[0], s_sk_shares=(wrong,))
    with pytest.raises(MalformedMessage, match="not requested"):
        server.aggregate(responses)


# --- client refusals ----------------------------------------------------------------------------------------------


def test_unmask_refusesBothSharesOfOnePeer() -> None:
    config = _config(n=8, threshold=5)
    clients, _, request = _through_masking(config, _updates(config))
    greedy = dataclasses.replace(request, dropped=(3,))
    with pytest.raises(ProtocolViolation, match="both the b and the s_sk shares of client 3"):
        clients[1].unmask(greedy)


def test_unmask_refusesWhenSurvivorsBelowThreshold() -> None:
    config = _config(n=8, threshold=5)
    clients, _, _ = _through_masking(config, _updates(config))
    thin = UnmaskRequest(config.round_id, survivors=(1, 2, 3, 4), dropped=(5, 6, 7, 8))
    with pytest.raises(RoundAborted, match="only 4 of client 1's closed neighbourhood survived; 5 needed"):
        clients[1].unmask(thin)


def test_unmask_refusesListsThatContradictWhatTheClientSaw() -> None:
    config = _config(n=8, threshold=5)
    clients, _, request = _through_masking(config, _updates(config), drop={8})
    forgotten = dataclasses.replace(request, dropped=())
    with pytest.raises(ProtocolViolation, match="neighbour 8 \\(not listed, shared\\)"):
        clients[1].unmask(forgotten)
    with pytest.raises(ProtocolViolation, match="not listed as a survivor"):
        clients[1].unmask(UnmaskRequest(config.round_id, (2, 3, 4, 5, 6, 7), (1, 8)))
    clients[1].unmask(request)
    with pytest.raises(ProtocolViolation, match="out of order"):
        clients[1].unmask(request)


def test_unmask_refusesWrongRoundAndDuplicateIds() -> None:
    config = _config(n=8, threshold=5)
    clients, _, request = _through_masking(config, _updates(config))
    with pytest.raises(WrongRound):
        clients[1].unmask(dataclasses.replace(request, round_id=_round_id("round-2")))
    with pytest.raises(MalformedMessage, match="listed twice"):
        clients[1].unmask(dataclasses.replace(request, survivors=(1, 1, *request.survivors[1:])))


def test_maskedInput_refusesTamperedCiphertext() -> None:
    config = _config(n=4, threshold=3)
    clients, inboxes = _until_shares(config)
    message = inboxes[1][0]
    flipped = message.ciphertext[:-1] + bytes([message.ciphertext[-1] ^ 1])
    inbox = (dataclasses.replace(message, ciphertext=flipped), *inboxes[1][1:])
    with pytest.raises(ShareDecryptionFailed, match=f"from client {message.sender} fail authentication"):
        clients[1].masked_input(_updates(config)[1], inbox)


def test_maskedInput_refusesSharesReflectedBackToTheirSender() -> None:
    # Client 1's shares for client 2 use the same channel key as 2's shares for 1; the associated data
    # (round, sender, recipient) is what stops the server from bouncing them back.
    config = _config(n=4, threshold=3)
    clients = {i: ClientRound(config, i) for i in config.participants}
    adverts = [c.advertise() for c in clients.values()]
    outgoing = clients[1].share_keys(adverts)
    for c in (clients[2], clients[3], clients[4]):
        c.share_keys(adverts)
    to_two = next(m for m in outgoing if m.recipient == 2)
    bounced = dataclasses.replace(to_two, sender=2, recipient=1)
    with pytest.raises(ShareDecryptionFailed):
        clients[1].masked_input(_updates(config)[1], [bounced])


def test_maskedInput_refusesWrongRoundDuplicatesAndMisroutedShares() -> None:
    config = _config(n=4, threshold=3)
    clients, inboxes = _until_shares(config)
    update = _updates(config)[1]
    with pytest.raises(WrongRound):
        clients[1].masked_input(update, [dataclasses.replace(inboxes[1][0], round_id=_round_id("round-2"))])
    with pytest.raises(MalformedMessage, match="two sets of shares"):
        clients[1].masked_input(update, [inboxes[1][0], inboxes[1][0]])
    with pytest.raises(MalformedMessage, match="reached client 1"):
        clients[1].masked_input(update, inboxes[2])
    with pytest.raises(MalformedMessage, match="shape"):
        clients[1].masked_input(update[:-1], inboxes[1])
    with pytest.raises(MalformedMessage, match="NaN"):
        clients[1].masked_input(np.full_like(update, np.nan), inboxes[1])
    # None of the refusals consumed the step: the honest call still works.
    assert clients[1].masked_input(update, inboxes[1]).masked.shape == (config.vector_length,)


def test_maskedInput_abortsWhenTooFewNeighboursShared() -> None:
    config = _config(n=4, threshold=3)
    clients, inboxes = _until_shares(config)
    with pytest.raises(RoundAborted, match="only 2 of client 1's closed neighbourhood shared keys; 3 needed"):
        clients[1].masked_input(_updates(config)[1], inboxes[1][:1])


def test_shareKeys_refusesBadAdverts() -> None:
    config = _config(n=4, threshold=3)
    clients = {i: ClientRound(config, i) for i in config.participants}
    adverts = [c.advertise() for c in clients.values()]
    cases: list[tuple[list[Advert], type[SecAggError], str]] = [
        ([*adverts, adverts[1]], MalformedMessage, "two adverts from client 2"),
        ([adverts[0], dataclasses.replace(adverts[1], s_pk=b"short"), *adverts[2:]], MalformedMessage, "32 bytes"),
        ([adverts[0], dataclasses.replace(adverts[1], s_pk=adverts[2].s_pk), *adverts[2:]], MalformedMessage, "same"),
        ([adverts[0], dataclasses.replace(adverts[1], round_id=_round_id("x")), *adverts[2:]], WrongRound, "round"),
        (adverts[1:], ProtocolViolation, "own advert"),
        ([dataclasses.replace(adverts[0], b_commitment=bytes(32)), *adverts[1:]], ProtocolViolation, "own advert"),
        (adverts[:2], RoundAborted, "only 2 of client 1's closed neighbourhood advertised"),
    ]
    for bad, error, message in cases:
        with pytest.raises(error, match=message):
            clients[1].share_keys(bad)


def test_clientRound_refusesStepsOutOfOrder() -> None:
    config = _config(n=4, threshold=3)
    client = ClientRound(config, 1)
    with pytest.raises(ProtocolViolation, match="masked_input called out of order; expected share_keys"):
        client.masked_input(_updates(config)[1], [])
    with pytest.raises(ProtocolViolation, match="out of order"):
        client.unmask(UnmaskRequest(config.round_id, (1, 2, 3, 4), ()))


# --- server refusals ----------------------------------------------------------------------------------------------


def test_routeShares_refusesIncompleteOrMisaddressedShares() -> None:
    config = _config(n=4, threshold=3)
    clients = {i: ClientRound(config, i) for i in config.participants}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    outgoing = {i: c.share_keys(adverts) for i, c in clients.items()}
    everything = [m for messages in outgoing.values() for m in messages]
    with pytest.raises(MalformedMessage, match="advert sender 9 is not a participant"):
        ServerRound(config).collect_adverts([*adverts, dataclasses.replace(adverts[0], sender=9)])
    with pytest.raises(MalformedMessage, match="client 1 sent no shares to neighbour"):
        server.route_shares(everything[1:])
    with pytest.raises(MalformedMessage, match="two sets of shares"):
        server.route_shares([*everything, everything[0]])
    with pytest.raises(MalformedMessage, match="not an advertised neighbour"):
        server.route_shares([dataclasses.replace(everything[0], recipient=1), *everything[1:]])
    # The refusals changed nothing: the complete batch still routes.
    assert {i: len(inbox) for i, inbox in server.route_shares(everything).items()} == {1: 3, 2: 3, 3: 3, 4: 3}


def test_collectMaskedInputs_refusesDuplicatesStrangersAndBadVectors() -> None:
    config = _config(n=4, threshold=3, length=10)
    updates = _updates(config)
    clients = {i: ClientRound(config, i) for i in config.participants}
    server = ServerRound(config)
    adverts = server.collect_adverts(c.advertise() for c in clients.values())
    inboxes = server.route_shares(m for i, c in clients.items() if i != 4 for m in c.share_keys(adverts))
    inputs = [clients[i].masked_input(updates[i], inboxes[i]) for i in (1, 2, 3)]
    with pytest.raises(MalformedMessage, match="two masked inputs"):
        server.collect_masked_inputs([*inputs, inputs[0]])
    with pytest.raises(MalformedMessage, match="did not share keys"):
        server.collect_masked_inputs([*inputs, MaskedInput(config.round_id, 4, inputs[0].masked)])
    with pytest.raises(MalformedMessage, match=r"uint32\[10\]"):
        server.collect_masked_inputs([*inputs[1:], dataclasses.replace(inputs[0], masked=inputs[0].masked[:5])])
    with pytest.raises(WrongRound):
        server.collect_masked_inputs([*inputs[1:], dataclasses.replace(inputs[0], round_id=_round_id("x"))])
    request = server.collect_masked_inputs(inputs)
    assert (request.survivors, request.dropped) == ((1, 2, 3), ())


# --- configuration and quantisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"round_id": b"short"}, "32 bytes"),
        ({"participants": (1, 2, 2, 3)}, "distinct"),
        ({"participants": (0, 1, 2, 3)}, "ints in 1"),
        ({"neighbours": 3}, "even"),
        ({"threshold": 2}, "majority"),
        ({"threshold": 6}, "at most 5"),
        ({"vector_length": 0}, "vector_length"),
        ({"quantisation": Quantisation(clip=2**14)}, "overflows int32"),
    ],
)
def test_roundConfig_rejectsInvalidSettings(change: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {
        "round_id": _round_id("r"),
        "participants": tuple(range(1, 11)),
        "threshold": 3,
        "neighbours": 4,
        "vector_length": 10,
    }
    with pytest.raises(ConfigError, match=message):
        RoundConfig(**(settings | change))


def test_quantisation_rejectsInvalidSettings() -> None:
    for kwargs in ({"clip": 0.0}, {"clip": float("inf")}, {"scale_bits": 31}, {"l2_clip": -1.0}):
        with pytest.raises(ConfigError):
            Quantisation(**kwargs)


def test_quantise_roundTripsWithinHalfAUnitAndClips() -> None:
    q = Quantisation(clip=1.0, scale_bits=16)
    update = np.array([0.0, 0.25, -0.3333, 1.0, -1.0, 7.5, -9.0, 1e-6], dtype=np.float32)
    words = quantise(update, q)
    assert words.dtype == np.uint32
    decoded = dequantise(words, q)
    assert np.abs(decoded - np.clip(update, -1, 1)).max() <= 0.5 / q.scale
    assert words[1] == 2**14
    assert words[4] == 2**32 - 2**16


def test_quantise_refusesNonFloatOrMultiDimensionalUpdates() -> None:
    q = Quantisation()
    for bad in (np.arange(4), np.zeros((2, 2), dtype=np.float32), [0.1, 0.2]):
        with pytest.raises(MalformedMessage, match="1-D float array"):
            quantise(bad, q)  # type: ignore[arg-type]


# --- performance --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_runRound_hundredClientsSeventyThousandParameters() -> None:
    config = _config(n=100, threshold=11, neighbours=20, length=70_000)
    updates = _updates(config, seed=8)
    dropped = {3, 12, 50, 77, 90}
    start, cpu_start = time.perf_counter(), time.process_time()
    result = run_round(updates, config, drop_after_sharing=dropped)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"\nsecagg: 100 clients x 70,000 float32, k=20, t=11, 5 dropouts: {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    expected = _plain_sum(updates, result.survivors)
    assert np.abs(result.total - expected).max() <= _tolerance(config)
    assert elapsed < 20.0
