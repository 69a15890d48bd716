"""The optional arkworks prover (groth16py): its proofs are accepted by the snarkjs worker's verifier and by the
Solidity verifier generated from the same key; tampering fails; a bad witness is a WitnessError."""

from __future__ import annotations

import pytest

from agents.capabilities.ads.common import PROVER_ENV, LazyProver
from marketplace.chain import ChainConnection
from marketplace.zk import ConversionSecret, MerkleTree, Prover, WitnessError, address_to_field, circuit_inputs
from marketplace.zk.arkworks import ethereum_proof, snarkjs_proof
from marketplace.zk.build import CircuitArtifacts, ensure_built

pytestmark = pytest.mark.slow

CAMPAIGN = 11
PAYEE = "0x00000000000000000000000000000000000a9e17"


@pytest.fixture(scope="module")
def artifacts() -> CircuitArtifacts:
    return ensure_built()


def _inputs(conversion: ConversionSecret) -> dict[str, object]:
    tree = MerkleTree()
    tree.extend([ConversionSecret(CAMPAIGN, 500 + i, 900 + i).commitment for i in range(3)])
    return circuit_inputs(conversion, tree.proof(tree.append(conversion.commitment)), PAYEE)


async def test_arkworksProof_acceptedBySnarkjsVerifier_tamperingFails(artifacts: CircuitArtifacts) -> None:
    conversion = ConversionSecret.new(CAMPAIGN)
    async with Prover(artifacts, backend="arkworks") as fast, Prover(artifacts) as reference:
        proof = await fast.prove(_inputs(conversion))
        assert proof.public_signals[1:] == (conversion.nullifier, CAMPAIGN, address_to_field(PAYEE))
        assert await reference.verify(proof)  # snarkjs, the verifying key of the committed verifier
        assert await fast.verify(proof)
        other_payee = proof.with_public_signals((*proof.public_signals[:3], address_to_field(PAYEE) + 1))
        assert not await reference.verify(other_payee)
        assert not await fast.verify(other_payee)
        with pytest.raises(WitnessError):
            await fast.prove({**_inputs(conversion), "nullifier": "1"})


def test_proofLayout_roundTrips() -> None:
    words = bytes(range(256))
    assert ethereum_proof(snarkjs_proof(words)) == words
    with pytest.raises(ValueError, match="256 bytes"):
        snarkjs_proof(words[:-1])


@pytest.mark.chain
async def test_arkworksProof_acceptedByTheDeployedSolidityVerifier(
    artifacts: CircuitArtifacts, conn: ChainConnection
) -> None:
    async with Prover(artifacts, backend="arkworks") as fast:
        proof = await fast.prove(_inputs(ConversionSecret.new(CAMPAIGN)))
    verifier = conn.contract("Groth16Verifier")
    packed = proof.packed()
    a, b, c = packed[0:2], ((packed[2], packed[3]), (packed[4], packed[5])), packed[6:8]
    assert await conn.call(verifier.functions.verifyProof(a, b, c, list(proof.public_signals))) is True
    wrong = [*proof.public_signals[:3], proof.public_signals[3] + 1]
    assert await conn.call(verifier.functions.verifyProof(a, b, c, wrong)) is False


async def test_agentsProverChoice_arkworksOrSnarkjs_elseOneLineError(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROVER_ENV, "arkworks")
    lazy = LazyProver()
    try:
        assert (await lazy.get()).backend == "arkworks"
    finally:
        await lazy.stop()
    monkeypatch.setenv(PROVER_ENV, "bellman")
    with pytest.raises(ValueError, match="AGORA_PROVER is `snarkjs` or `arkworks`, not 'bellman'"):
        await LazyProver().get()
