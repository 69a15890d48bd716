"""Model zoo and artifacts: deterministic construction, canonical bytes, and hash/size checks on load."""

from __future__ import annotations

import pytest
import torch

from marketplace.ml import (
    BlobHashMismatch,
    BlobTooLarge,
    ClassifierSpec,
    MalformedBlob,
    RecommenderSpec,
    SpecError,
    artifact_hash,
    build_model,
    content_id,
    load_model,
    make_interactions,
    serialize_dataset,
    serialize_model,
    spec_from_dict,
    spec_id,
    spec_to_dict,
)
from marketplace.ml.blobs import encode_bundle
from marketplace.ml.zoo import parameter_count


@pytest.mark.parametrize("kind", ["recommender", "classifier"])
def test_buildModel_sameSeedSameWeightsHash(kind: str) -> None:
    assert artifact_hash(build_model(kind, seed=3)) == artifact_hash(build_model(kind, seed=3))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["recommender", "classifier"])
def test_buildModel_differentSeedDifferentWeightsHash(kind: str) -> None:
    assert artifact_hash(build_model(kind, seed=3)) != artifact_hash(build_model(kind, seed=4))  # type: ignore[arg-type]


def test_buildModel_leavesGlobalRngUntouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("recommender", seed=5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("spec", [RecommenderSpec(), ClassifierSpec(), RecommenderSpec(num_users=10, num_items=20)])
def test_parameterCount_matchesBuiltModel(spec: RecommenderSpec | ClassifierSpec) -> None:
    model = build_model(spec, seed=0)
    assert parameter_count(spec) == sum(p.numel() for p in model.parameters())


def test_defaultRecommender_isSmall() -> None:
    assert 40_000 <= parameter_count(RecommenderSpec()) <= 80_000


@pytest.mark.parametrize("spec", [RecommenderSpec(), ClassifierSpec(num_classes=3)])
def test_specFromDict_roundTrips(spec: RecommenderSpec | ClassifierSpec) -> None:
    assert spec_from_dict(spec_to_dict(spec)) == spec
    assert spec_id(spec_from_dict(spec_to_dict(spec))) == spec_id(spec)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "transformer"}, "unknown model kind"),
        ({"kind": "recommender", "num_users": True}, "must be an integer"),
        ({"kind": "recommender", "num_users": 0}, "must be an integer"),
        ({"kind": "classifier", "num_features": "16"}, "must be an integer"),
        ({"kind": "classifier", "depth": 3}, "unknown classifier spec fields"),
        ({"kind": "recommender", "num_users": 60_000, "num_items": 60_000, "embedding_dim": 64}, "over the limit"),
    ],
)
def test_specFromDict_rejectsBadSpecs(data: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec_from_dict(data)


def test_loadModel_roundTripsWeightsAndHash() -> None:
    model = build_model("recommender", seed=11)
    artifact = serialize_model(model)
    loaded = load_model(artifact.data, artifact.artifact_hash)
    assert loaded.spec == model.spec
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert artifact_hash(loaded) == artifact.artifact_hash


def test_artifactHash_isBytes32Hex() -> None:
    digest = artifact_hash(build_model("classifier", seed=0))
    assert digest.startswith("0x")
    assert len(bytes.fromhex(digest[2:])) == 32


def test_serializeModel_independentOfStateDictOrder() -> None:
    model = build_model("classifier", seed=2)
    state = model.state_dict()
    reordered = dict(reversed(list(state.items())))
    meta = {"format": "agora.model.v1", "spec": spec_to_dict(model.spec)}
    assert list(reordered) != list(state)
    assert encode_bundle(meta, reordered) == serialize_model(model).data


def test_loadModel_failsIfHashDoesNotMatch() -> None:
    artifact = serialize_model(build_model("classifier", seed=0))
    tampered = bytearray(artifact.data)
    tampered[-1] ^= 0x01
    with pytest.raises(BlobHashMismatch, match="does not match the expected content id"):
        load_model(bytes(tampered), artifact.artifact_hash)


def test_loadModel_failsIfOverSizeLimit() -> None:
    artifact = serialize_model(build_model("classifier", seed=0))
    with pytest.raises(BlobTooLarge, match=f"{len(artifact.data)} bytes, over the limit of 1000 bytes"):
        load_model(artifact.data, artifact.artifact_hash, max_bytes=1000)


def test_loadModel_failsIfWeightsDoNotFitSpec() -> None:
    model = build_model("classifier", seed=0)
    state = model.state_dict()
    state["layers.0.weight"] = torch.zeros(3, 3)
    data = encode_bundle({"format": "agora.model.v1", "spec": spec_to_dict(model.spec)}, state)
    with pytest.raises(MalformedBlob, match=r"weight .layers\.0\.weight. is \(3, 3\)"):
        load_model(data, content_id(data))


def test_loadModel_failsOnDatasetBlob() -> None:
    blob = serialize_dataset(make_interactions(RecommenderSpec(), 10, seed=0))
    with pytest.raises(MalformedBlob, match="not a model artifact"):
        load_model(blob.data, blob.content_id)


def test_loadModel_failsOnGarbage() -> None:
    data = b"not an artifact at all"
    with pytest.raises(MalformedBlob, match="bad magic"):
        load_model(data, content_id(data))
