"""Content-addressed tensor bundles: one canonical byte encoding shared by datasets and model artifacts.

Layout of a bundle (all integers big-endian):

    magic (8 bytes) | header length (u32) | header (canonical JSON, UTF-8) | tensor data

The header holds the caller's metadata plus, for every tensor in name order, its dtype, shape, offset
and length. Tensor data is written little-endian, C-contiguous, in name order. Sorting by name (rather
than following dict insertion order) and writing JSON with sorted keys and no whitespace is what makes
the bytes, and therefore the sha256 content id, depend only on the content.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

MAGIC = b"AGORA\x00b1"
"""First 8 bytes of every bundle; bumped when the layout changes."""

DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024
"""Default ceiling for blobs received from other agents (16 MiB)."""

# Only these dtypes cross the wire; each maps to an explicit little-endian numpy dtype so the bytes
# do not depend on the host's byte order.
_DTYPES: dict[torch.dtype, str] = {
    torch.float32: "<f4",
    torch.float64: "<f8",
    torch.int64: "<i8",
}
_DTYPE_BY_NAME: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
}
_NAME_BY_DTYPE = {dtype: name for name, dtype in _DTYPE_BY_NAME.items()}


class BlobError(ValueError):
    """A blob could not be accepted: too large, wrong hash, or malformed."""


class BlobTooLarge(BlobError):
    """A blob exceeds the size limit the receiver set."""


class BlobHashMismatch(BlobError):
    """A blob's sha256 does not match the content id it was announced under."""


class MalformedBlob(BlobError):
    """A blob's bytes do not decode to a valid bundle."""


def content_id(data: bytes) -> str:
    """Return the sha256 of `data` as 0x-prefixed hex (64 hex digits, usable as a Solidity bytes32)."""
    return "0x" + hashlib.sha256(data).hexdigest()


def check_blob(data: bytes, expected_id: str, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
    """Raise BlobTooLarge or BlobHashMismatch unless `data` is within `max_bytes` and hashes to `expected_id`."""
    if len(data) > max_bytes:
        raise BlobTooLarge(f"blob is {len(data)} bytes, over the limit of {max_bytes} bytes")
    actual = content_id(data)
    if actual != expected_id.lower():
        raise BlobHashMismatch(f"blob hash {actual} does not match the expected content id {expected_id}")


def canonical_json(value: Any) -> bytes:
    """Encode `value` as JSON with sorted keys and no whitespace, so equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def encode_bundle(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> bytes:
    """Encode metadata and named tensors (float32, float64 or int64) into canonical bundle bytes."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu()
        if tensor.dtype not in _DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {tensor.dtype}; bundles hold only {sorted(_DTYPE_BY_NAME)}")
        raw = tensor.contiguous().numpy().astype(_DTYPES[tensor.dtype], copy=False).tobytes(order="C")
        entries.append(
            {
                "dtype": _NAME_BY_DTYPE[tensor.dtype],
                "name": name,
                "nbytes": len(raw),
                "offset": offset,
                "shape": list(tensor.shape),
            }
        )
        chunks.append(raw)
        offset += len(raw)
    header = canonical_json({"meta": dict(meta), "tensors": entries})
    return MAGIC + struct.pack(">I", len(header)) + header + b"".join(chunks)


def decode_bundle(data: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Decode bundle bytes into (metadata, tensors); raise MalformedBlob on any inconsistency."""
    prefix = len(MAGIC) + 4
    if len(data) < prefix or data[: len(MAGIC)] != MAGIC:
        raise MalformedBlob("not an agora bundle (bad magic bytes)")
    (header_len,) = struct.unpack(">I", data[len(MAGIC) : prefix])
    if prefix + header_len > len(data):
        raise MalformedBlob("bundle header runs past the end of the blob")
    try:
        header = json.loads(data[prefix : prefix + header_len])
        meta = header["meta"]
        entries = header["tensors"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedBlob(f"bundle header is not valid: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(entries, list):
        raise MalformedBlob("bundle header has the wrong structure")
    body = data[prefix + header_len :]
    tensors: dict[str, torch.Tensor] = {}
    expected_offset = 0
    for entry in entries:
        name, tensor, nbytes = _decode_entry(entry, body, expected_offset)
        if name in tensors:
            raise MalformedBlob(f"tensor {name!r} appears twice")
        tensors[name] = tensor
        expected_offset += nbytes
    if expected_offset != len(body):
        raise MalformedBlob(f"bundle has {len(body) - expected_offset} trailing bytes")
    return meta, tensors


def _decode_entry(entry: Any, body: bytes, expected_offset: int) -> tuple[str, torch.Tensor, int]:
    try:
        name = entry["name"]
        dtype = _DTYPE_BY_NAME[entry["dtype"]]
        shape = [int(d) for d in entry["shape"]]
        offset = int(entry["offset"])
        nbytes = int(entry["nbytes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBlob(f"bad tensor entry in bundle header: {exc}") from exc
    if not isinstance(name, str) or any(d < 0 for d in shape):
        raise MalformedBlob(f"bad tensor entry in bundle header: {entry!r}")
    # Tensors must be packed back to back in header order; anything else is not canonical.
    if offset != expected_offset or offset + nbytes > len(body):
        raise MalformedBlob(f"tensor {name!r} has an inconsistent offset or length")
    np_dtype = np.dtype(_DTYPES[dtype])
    count = int(np.prod(shape, dtype=np.int64))
    if count * np_dtype.itemsize != nbytes:
        raise MalformedBlob(f"tensor {name!r}: shape {shape} does not match {nbytes} bytes")
    array = np.frombuffer(body, dtype=np_dtype, count=count, offset=offset).reshape(shape)
    # astype to native order and copy: the tensor must own writable memory independent of `body`.
    return name, torch.from_numpy(array.astype(np_dtype.newbyteorder("="), copy=True)), nbytes
