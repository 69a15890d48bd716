"""The prover worker: real Groth16 proofs of the conversion circuit, verified off chain; tampering fails.

Needs the cached circuit build (`python -m marketplace.zk.build`; ~3-4 min the first time, instant after).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from marketplace.zk import (
    ConversionSecret,
    MerkleTree,
    Prover,
    ProverNotRunning,
    WitnessError,
    address_to_field,
    circuit_inputs,
)
from marketplace.zk.build import (
    CircuitArtifacts,
    build,
    build_key,
    committed_matches,
    committed_vkey_path,
    ensure_built,
    main,
)

pytestmark = pytest.mark.slow

CAMPAIGN = 7
PAYEE = "0x00000000000000000000000000000000000a9e17"
OTHER_PAYEE = "0x000000000000000000000000000000000000b0b0"


@pytest.fixture(scope="module")
def artifacts() -> CircuitArtifacts:
    """The cached circuit build (built once, never downloaded), checked against the committed verifier."""
    return ensure_built()


def _witness(conversion: ConversionSecret, others: int = 3, payee: str = PAYEE) -> dict[str, object]:
    tree = MerkleTree()
    tree.extend([ConversionSecret(CAMPAIGN, 1000 + i, 2000 + i).commitment for i in range(others)])
    index = tree.append(conversion.commitment)
    return circuit_inputs(conversion, tree.proof(index), payee)


def test_build_isCachedAndMatchesCommittedVerifyingKey(artifacts: CircuitArtifacts) -> None:
    started = time.monotonic()
    again = ensure_built()
    assert time.monotonic() - started < 5
    assert again == artifacts
    assert artifacts.key == build_key()
    assert committed_matches(artifacts)
    vkey = json.loads(committed_vkey_path().read_text())
    assert (vkey["protocol"], vkey["curve"], vkey["nPublic"]) == ("groth16", "bn128", 4)


async def test_prove_realProofVerifiesWithPublicSignalsInCircuitOrder(artifacts: CircuitArtifacts) -> None:
    conversion = ConversionSecret(CAMPAIGN, secret=123, salt=456)
    inputs = _witness(conversion)
    async with Prover(artifacts) as prover:
        proof = await prover.prove(inputs)
        assert proof.public_signals == (
            int(str(inputs["root"])),
            conversion.nullifier,
            CAMPAIGN,
            address_to_field(PAYEE),
        )
        assert await prover.verify(proof)


async def test_verify_tamperedPublicInputOrProofFails(artifacts: CircuitArtifacts) -> None:
    conversion = ConversionSecret.new(CAMPAIGN)
    async with Prover(artifacts) as prover:
        proof = await prover.prove(_witness(conversion))
        root, nullifier, campaign, payee = proof.public_signals
        for tampered in (
            (root, nullifier, campaign, address_to_field(OTHER_PAYEE)),
            (root, nullifier + 1, campaign, payee),
            (root, nullifier, campaign + 1, payee),
            (root + 1, nullifier, campaign, payee),
        ):
            assert not await prover.verify(proof.with_public_signals(tampered))
        bent = type(proof)((proof.c[0], proof.c[1]), proof.b, proof.a, proof.public_signals)
        assert not await prover.verify(bent)


async def test_prove_inputsOutsideTheTreeRaiseWitnessError(artifacts: CircuitArtifacts) -> None:
    conversion = ConversionSecret.new(CAMPAIGN)
    inputs = _witness(conversion)
    async with Prover(artifacts) as prover:
        with pytest.raises(WitnessError):
            await prover.prove({**inputs, "root": "12345"})
        with pytest.raises(WitnessError):
            await prover.prove({**inputs, "nullifier": str(ConversionSecret.new(CAMPAIGN).nullifier)})
        # The worker survives a failed request.
        assert await prover.verify(await prover.prove(inputs))


async def test_prove_beforeStartRaisesProverNotRunning(artifacts: CircuitArtifacts) -> None:
    prover = Prover(artifacts)
    with pytest.raises(ProverNotRunning):
        await prover.prove({})
    await prover.start()
    await prover.stop()
    assert not prover.running
    with pytest.raises(ProverNotRunning):
        await prover.prove({})


async def test_build_productionSetupTakesPtauByPathAndContributesFreshEntropy(
    artifacts: CircuitArtifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dev powers of tau stands in for a ceremony file; the zkey gets a fresh random contribution,
    # so the verifying key differs from the committed (dev) one and only --export may replace it.
    ptau = next((artifacts.directory.parent / "ptau").glob("*.ptau"))
    monkeypatch.setenv("AGORA_ZK_CACHE", str(tmp_path))
    production = build(ptau)
    assert production.production
    assert production.key not in {artifacts.key, build_key()}
    assert json.loads(production.vkey.read_text()) != json.loads(committed_vkey_path().read_text())
    assert not committed_matches(production)
    assert main(["--ptau", str(ptau)]) == 1
    async with Prover(production) as prover:
        proof = await prover.prove(_witness(ConversionSecret.new(CAMPAIGN)))
        assert await prover.verify(proof)
