"""Synthetic datasets: seeded generation, splits, validation, and content-addressed blobs."""

from __future__ import annotations

import pytest
import torch

from marketplace.ml import (
    BlobHashMismatch,
    BlobTooLarge,
    ClassificationDataset,
    ClassifierSpec,
    DatasetError,
    InteractionDataset,
    MalformedBlob,
    RecommenderSpec,
    base_items,
    catalogue_items,
    content_id,
    load_dataset,
    make_classification,
    make_interactions,
    serialize_dataset,
    split,
    validate_dataset,
)
from marketplace.ml.blobs import encode_bundle

SPEC = RecommenderSpec()


def test_makeInteractions_sameSeedSameContentId() -> None:
    a = serialize_dataset(make_interactions(SPEC, 500, seed=1))
    b = serialize_dataset(make_interactions(SPEC, 500, seed=1))
    assert a.data == b.data
    assert a.content_id == b.content_id


def test_makeInteractions_differentSeedDifferentContentId() -> None:
    a = serialize_dataset(make_interactions(SPEC, 500, seed=1))
    assert a.content_id != serialize_dataset(make_interactions(SPEC, 500, seed=2)).content_id


def test_makeInteractions_staysInsideRequestedItems() -> None:
    items = catalogue_items(SPEC, 1)
    data = make_interactions(SPEC, 400, seed=0, items=items)
    assert int(data.item_ids.min()) >= items.start
    assert int(data.item_ids.max()) < items.stop
    # Labels carry signal both ways: neither all positive nor all negative.
    assert 0.2 < float(data.labels.mean()) < 0.8


def test_catalogueItems_disjointFromBaseItems() -> None:
    base = set(base_items(SPEC))
    catalogues = [set(catalogue_items(SPEC, i)) for i in range(4)]
    assert all(not (c & base) for c in catalogues)
    assert all(not (catalogues[i] & catalogues[j]) for i in range(4) for j in range(i + 1, 4))


def test_catalogueItems_failsIfIndexOutOfRange() -> None:
    with pytest.raises(DatasetError, match="catalogue index 4 out of range; this spec has 4 catalogues"):
        catalogue_items(SPEC, 4)


def test_split_partitionsTheData() -> None:
    data = make_interactions(SPEC, 1000, seed=0)
    train, heldout = split(data, 0.2, seed=0)
    assert (len(train), len(heldout)) == (800, 200)
    pairs = {(int(u), int(i)) for u, i in zip(data.user_ids, data.item_ids, strict=True)}
    parts = {(int(u), int(i)) for d in (train, heldout) for u, i in zip(d.user_ids, d.item_ids, strict=True)}
    assert parts == pairs


@pytest.mark.parametrize(
    "dataset",
    [make_interactions(SPEC, 300, seed=4), make_classification(ClassifierSpec(), 300, seed=4)],
)
def test_loadDataset_roundTrips(dataset: InteractionDataset | ClassificationDataset) -> None:
    blob = serialize_dataset(dataset)
    loaded = load_dataset(blob.data, blob.content_id)
    assert type(loaded) is type(dataset)
    assert serialize_dataset(loaded).content_id == blob.content_id


def test_loadDataset_failsIfHashDoesNotMatch() -> None:
    blob = serialize_dataset(make_interactions(SPEC, 50, seed=0))
    other = serialize_dataset(make_interactions(SPEC, 50, seed=1))
    with pytest.raises(BlobHashMismatch, match=f"does not match the expected content id {blob.content_id}"):
        load_dataset(other.data, blob.content_id)


def test_loadDataset_failsIfOverSizeLimit() -> None:
    blob = serialize_dataset(make_interactions(SPEC, 5000, seed=0))
    with pytest.raises(BlobTooLarge, match="over the limit of 65536 bytes"):
        load_dataset(blob.data, blob.content_id, max_bytes=65_536)


def test_loadDataset_failsOnInconsistentLengths() -> None:
    data = encode_bundle(
        {"format": "agora.dataset.v1", "kind": "interactions"},
        {"user_ids": torch.zeros(3, dtype=torch.int64), "item_ids": torch.zeros(2, dtype=torch.int64),
         "labels": torch.zeros(3)},
    )  # fmt: skip
    with pytest.raises(MalformedBlob, match="different lengths"):
        load_dataset(data, content_id(data))


def test_loadDataset_failsOnTruncatedBlob() -> None:
    blob = serialize_dataset(make_interactions(SPEC, 50, seed=0))
    truncated = blob.data[:-8]
    with pytest.raises(MalformedBlob, match="inconsistent offset or length"):
        load_dataset(truncated, content_id(truncated))


def test_validateDataset_failsOnOutOfRangeIds() -> None:
    data = make_interactions(RecommenderSpec(num_items=2048), 2000, seed=0, items=range(1500, 2048))
    with pytest.raises(DatasetError, match=r"item ids must lie in \[0, 1023\]"):
        validate_dataset(data, SPEC)


def test_validateDataset_failsOnWrongKind() -> None:
    with pytest.raises(DatasetError, match="a classifier needs a classification dataset"):
        validate_dataset(make_interactions(SPEC, 10, seed=0), ClassifierSpec())


def test_validateDataset_failsOnWrongFeatureWidth() -> None:
    data = make_classification(ClassifierSpec(num_features=8), 10, seed=0)
    with pytest.raises(DatasetError, match="features have width 8, the model needs 16"):
        validate_dataset(data, ClassifierSpec())
