"""A content-addressed blob folder: datasets and model artifacts by id, verified by hash on every read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from marketplace.ml.blobs import DEFAULT_MAX_BLOB_BYTES, BlobError, check_blob, content_id


class BlobNotFound(BlobError):
    """No blob with that id is stored."""


class BlobStore:
    """Blobs in a directory, one file per sha256 content id (the same id ModelRegistry and JobEscrow record).

    Each agent keeps one in its own data folder (agents/blobs.py serves it to granted peers); every read
    re-hashes, so a file altered on disk is never handed out under its id.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        """Store a blob atomically and return its content id (0x-sha256)."""
        blob_id = content_id(data)
        path = self.path(blob_id)
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        return blob_id

    def get(self, blob_id: str, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> bytes:
        """Read a blob, refusing one over max_bytes or whose content no longer matches its id."""
        path = self.path(blob_id)
        if not path.exists():
            raise BlobNotFound(f"no blob {blob_id}")
        size = path.stat().st_size
        if size > max_bytes:
            raise BlobError(f"blob {blob_id} is {size} bytes, over the limit of {max_bytes} bytes")
        data = path.read_bytes()
        check_blob(data, blob_id, max_bytes)
        return data

    def paths(self) -> list[Path]:
        """The file of every stored blob (temporary and partial files excluded)."""
        return [p for p in self.root.iterdir() if len(p.name) == 64 and p.is_file() and _is_hex(p.name)]

    def path(self, blob_id: str) -> Path:
        """The file holding `blob_id` (which may not exist); BlobError for anything but a content id."""
        digest = blob_id.removeprefix("0x")
        if len(digest) != 64 or not _is_hex(digest):
            raise BlobError(f"not a content id: {blob_id!r}")
        return self.root / digest


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
