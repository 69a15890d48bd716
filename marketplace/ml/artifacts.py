"""Model artifacts: canonical bytes of a model (spec + weights) and their 0x sha256 `artifact_hash`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marketplace.ml.blobs import (
    DEFAULT_MAX_BLOB_BYTES,
    MalformedBlob,
    check_blob,
    content_id,
    decode_bundle,
    encode_bundle,
)
from marketplace.ml.zoo import AgoraModel, SpecError, build_model, spec_from_dict, spec_to_dict

_ARTIFACT_FORMAT = "agora.model.v1"


@dataclass(frozen=True)
class ModelArtifact:
    """A serialized model: its canonical bytes and their hash (what JobEscrow and ModelRegistry record)."""

    data: bytes
    artifact_hash: str


def serialize_model(model: AgoraModel) -> ModelArtifact:
    """Serialize the model's spec and weights to canonical bytes and hash them.

    The bytes depend only on the spec and the parameter values: tensors are written in name order,
    little-endian, so two models with equal weights hash equally whatever order their state dict was
    built in.
    """
    meta = {"format": _ARTIFACT_FORMAT, "spec": spec_to_dict(model.spec)}
    data = encode_bundle(meta, model.state_dict())
    return ModelArtifact(data=data, artifact_hash=content_id(data))


def artifact_hash(model: AgoraModel) -> str:
    """Return the 0x sha256 of the model's canonical serialization."""
    return serialize_model(model).artifact_hash


def load_model(data: bytes, expected_hash: str, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> AgoraModel:
    """Rebuild a model from artifact bytes after checking size and hash; the model is returned in eval mode.

    Raises BlobTooLarge, BlobHashMismatch or MalformedBlob (all BlobError, a ValueError).
    """
    check_blob(data, expected_hash, max_bytes)
    meta, tensors = decode_bundle(data)
    if meta.get("format") != _ARTIFACT_FORMAT:
        raise MalformedBlob(f"not a model artifact (format {meta.get('format')!r})")
    try:
        spec = spec_from_dict(meta["spec"])
    except (KeyError, TypeError, AttributeError, SpecError) as exc:
        raise MalformedBlob(f"model artifact has an invalid spec: {exc}") from exc
    # The seed is irrelevant: every parameter is overwritten below, and strict loading refuses any gap.
    model = build_model(spec, seed=0)
    expected = model.state_dict()
    if set(expected) != set(tensors):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise MalformedBlob(f"artifact weights do not fit the spec (missing {missing}, unexpected {extra})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise MalformedBlob(
                f"weight {name!r} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"the spec needs {tuple(expected[name].shape)} {expected[name].dtype}"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise MalformedBlob(f"weight {name!r} contains NaN or infinity")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
