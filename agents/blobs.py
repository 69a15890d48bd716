"""An agent's own blobs: kept in its data folder, served on its endpoint to the peers it granted them to, and
fetched from other owners by reference (protocols.blobs.BlobRef).

Serving. `GET /blobs/<content id>` on the agent's envelope server, with headers naming the reader, the grant,
an expiry, a nonce and the reader's signature over all of them and the start offset (protocols.blobs
.fetch_digest). The owner answers only when the signature is the reader's, the grant is one it issued to that
reader for that blob, unrevoked and unexpired, the nonce is new, and the reader has fewer than
`max_transfers_per_peer` transfers open. `Range: bytes=N-` resumes a transfer.

Fetching. The reader checks the reference (signed by its owner, naming this agent, not expired, size within
the caller's cap) before connecting, streams into a partial file while hashing, refuses a byte beyond the
announced size, resumes from the partial file after a dropped connection, and moves the blob into its store
only when size and sha256 match. No partial or unchecked blob is ever returned or kept under its id.

Disk. Blobs are pinned by what still needs them (a catalogue entry, an open job); when the store grows past
`capacity_bytes`, unpinned blobs are evicted least recently used first. Pinned blobs are never evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from uagents.resolver import Resolver

from agents.crypto import FastIdentity, SignatureError, verify_digest
from agents.mods import ReplayLedger
from agents.state import Record, Repository
from agents.store import AgentStore
from agents.transport import EndpointPolicy, EndpointRefused, checked_connector
from marketplace.blobstore import BlobNotFound, BlobStore
from marketplace.ml.blobs import BlobError, BlobHashMismatch, BlobTooLarge
from protocols.blobs import BlobGrant, BlobRef, fetch_digest, grant_digest

_HEADERS = ("x-agora-peer", "x-agora-grant", "x-agora-expires", "x-agora-nonce", "x-agora-signature")


@dataclass(frozen=True)
class BlobLimits:
    """How much an agent stores, serves and accepts."""

    max_blob_bytes: int = 64 * 1024 * 1024
    """Largest blob this agent fetches or serves."""
    max_transfers_per_peer: int = 4
    """Transfers one reader may have open at once; more are refused with `busy`."""
    capacity_bytes: int = 2 * 1024 * 1024 * 1024
    """Disk budget for blobs; beyond it unpinned blobs are evicted, least recently used first."""
    request_ttl: int = 60
    """Longest validity (seconds) a fetch request may claim."""
    grant_ttl: int = 24 * 3600
    """Default lifetime of a grant (seconds)."""
    chunk_bytes: int = 1024 * 1024
    fetch_attempts: int = 5
    """Connections a fetch may use, resuming each time from what it already holds."""
    timeout: float = 120.0


class BlobRefused(BlobError):
    """The owner (or this agent, before connecting) refused a transfer; `code` says why."""

    code = "refused"
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.code}: {detail}")
        self.detail = detail


class UnknownBlob(BlobRefused):
    """The owner holds no blob with that id."""

    code, status = "unknown_blob", 404


class GrantRefused(BlobRefused):
    """No valid grant covers this reader and blob: foreign, expired, revoked, forged or missing."""

    code, status = "grant_refused", 403


class UnknownOwner(BlobRefused):
    """The resolver knows no endpoint for the blob's owner."""

    code = "unknown_owner"


class TransferBusy(BlobRefused):
    """The reader already has as many transfers open as the owner allows."""

    code, status = "busy", 429


class ReplayedFetch(BlobRefused):
    """A fetch request whose nonce the owner has seen before."""

    code, status = "replayed", 409


_REFUSALS: dict[int, type[BlobRefused]] = {cls.status: cls for cls in (UnknownBlob, GrantRefused, TransferBusy)}


class IssuedGrant(Record):
    """A grant this agent issued, kept so it can be checked and revoked."""

    grant: dict[str, object]
    revoked: bool = False


class Pins(Record):
    """Why a blob must stay: one reason per holder (e.g. `catalogue`, `escrow:12`)."""

    reasons: list[str]


class Blobs:
    """This agent's blob store, grants, server handler and fetcher (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        identity: FastIdentity,
        store: AgentStore,
        resolver: Resolver,
        policy: EndpointPolicy,
        replay: ReplayLedger,
        wall_clock: Callable[[], float],
        limits: BlobLimits | None = None,
    ) -> None:
        self.root = root
        self.limits = limits or BlobLimits()
        self._local = BlobStore(root)
        self._partial = root / "partial"
        self._partial.mkdir(exist_ok=True)
        self._identity = identity
        self._resolver = resolver
        self._policy = policy
        self._replay = replay
        self._now = wall_clock
        self._grants = Repository(store, "blobs.grant", IssuedGrant)
        self._pins = Repository(store, "blobs.pin", Pins)
        self._serving: dict[str, int] = {}
        self._fetching: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None
        self.served_from_offset: list[int] = []
        """Start offsets of the transfers this agent served (a resumed transfer starts past 0)."""

    @property
    def address(self) -> str:
        """The owner address every grant of this agent names."""
        return str(self._identity.address)

    # --- local store --------------------------------------------------------------------------------
    def put(self, data: bytes, pin: str | None = None) -> str:
        """Store `data` (atomically) and return its content id; `pin` keeps it from eviction for that reason."""
        if len(data) > self.limits.max_blob_bytes:
            raise BlobTooLarge(f"{len(data)} bytes is over this agent's blob limit of {self.limits.max_blob_bytes}")
        blob_id = self._local.put(data)
        if pin is not None:
            self.pin(blob_id, pin)
        self._evict(keep=blob_id)
        return blob_id

    def has(self, blob_id: str) -> bool:
        """True when this agent holds the blob."""
        try:
            return self._local.path(blob_id).exists()
        except BlobError:
            return False

    def get(self, blob_id: str, max_bytes: int | None = None) -> bytes:
        """A blob this agent holds, re-hashed on read; BlobNotFound when it holds none by that id."""
        data = self._local.get(blob_id, max_bytes or self.limits.max_blob_bytes)
        os.utime(self._local.path(blob_id))  # least recently used is evicted first
        return data

    def pin(self, blob_id: str, reason: str) -> None:
        """Keep a blob until every reason it is pinned for is released."""
        pins = self._pins.get(blob_id) or Pins(reasons=[])
        if reason not in pins.reasons:
            pins.reasons.append(reason)
            self._pins.put(blob_id, pins)

    def unpin(self, blob_id: str, reason: str) -> None:
        """Release one reason to keep a blob; without reasons left it may be evicted."""
        pins = self._pins.get(blob_id)
        if pins is not None and reason in pins.reasons:
            pins.reasons.remove(reason)
            if pins.reasons:
                self._pins.put(blob_id, pins)
            else:
                self._pins.delete(blob_id)

    def usage(self) -> int:
        """Bytes of stored blobs (partial transfers excluded)."""
        return sum(path.stat().st_size for path in self._local.paths())

    def _evict(self, keep: str) -> list[str]:
        """Drop unpinned blobs, least recently used first, until the store fits `capacity_bytes`."""
        paths = sorted(self._local.paths(), key=lambda p: p.stat().st_mtime)
        total = sum(path.stat().st_size for path in paths)
        evicted = []
        for path in paths:
            if total <= self.limits.capacity_bytes:
                break
            blob_id = "0x" + path.name
            if blob_id == keep or self._pins.get(blob_id) is not None:
                continue
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            evicted.append(blob_id)
        return evicted

    # --- grants -------------------------------------------------------------------------------------
    def grant(self, blob_id: str, peer: str, ttl: int | None = None) -> BlobRef:
        """Let agent `peer` read blob `blob_id` for `ttl` seconds: the reference to send it."""
        size = self._local.path(blob_id).stat().st_size if self.has(blob_id) else None
        if size is None:
            raise BlobNotFound(f"no blob {blob_id} to grant")
        grant = BlobGrant(
            grant_id=secrets.token_hex(16),
            blob_id=blob_id,
            size=size,
            owner=self.address,
            peer=peer,
            expires=int(self._now()) + (ttl or self.limits.grant_ttl),
            signature="",
        )
        grant.signature = self._identity.sign_digest(grant_digest(grant))
        self._grants.put(grant.grant_id, IssuedGrant(grant=json.loads(grant.json())))
        return BlobRef(blob_id=blob_id, size=size, owner=self.address, grant=grant)

    def revoke(self, grant_id: str) -> None:
        """Refuse every later fetch under this grant."""
        issued = self._grants.get(grant_id)
        if issued is not None:
            issued.revoked = True
            self._grants.put(grant_id, issued)

    # --- serving ------------------------------------------------------------------------------------
    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer `GET /blobs/<id>`: the blob's bytes from the requested offset, or a JSON refusal."""
        if request.method != "GET":
            return web.Response(status=405)
        try:
            peer, offset, path, size = await self._authorise(request)
        except BlobRefused as err:
            return web.json_response({"code": err.code, "detail": err.detail}, status=err.status)
        self._serving[peer] = self._serving.get(peer, 0) + 1
        try:
            return await self._stream(request, path, offset, size)
        finally:
            self._serving[peer] -= 1
            if not self._serving[peer]:
                del self._serving[peer]

    async def _authorise(self, request: web.BaseRequest) -> tuple[str, int, Path, int]:
        """(reader, start offset, file, size) of a fetch request every check passed; BlobRefused otherwise."""
        blob_id = request.path.rpartition("/blobs/")[2]  # /blobs/<id>, or /agents/<address>/blobs/<id> on a host
        values = [request.headers.get(name, "") for name in _HEADERS]
        if not all(values):
            raise BlobRefused(f"a fetch needs the headers {', '.join(_HEADERS)}")
        peer, grant_id, expires_text, nonce, signature = values
        try:
            expires, offset = int(expires_text), _range_start(request.headers.get("range"))
        except ValueError as err:
            raise BlobRefused(str(err)) from err
        now = self._now()
        if not now < expires <= now + self.limits.request_ttl:
            raise BlobRefused(f"fetch request expired or valid too long (over {self.limits.request_ttl} s)")
        try:
            verify_digest(peer, signature, fetch_digest(self.address, blob_id, grant_id, offset, expires, nonce))
        except SignatureError as err:
            raise GrantRefused(f"fetch not signed by {peer[:16]}…: {err}") from err
        issued = self._grants.get(grant_id)
        grant = BlobGrant.parse_obj(issued.grant) if issued is not None else None
        if grant is None or issued is None or issued.revoked:
            raise GrantRefused("no such grant, or it was revoked")
        if grant.peer != peer or grant.blob_id != blob_id:
            raise GrantRefused("that grant is for another reader or another blob")
        if grant.expires <= now:
            raise GrantRefused("the grant has expired")
        if not await self._replay.remember(peer, "blob:" + nonce, float(expires)):
            raise ReplayedFetch("this fetch request was already used")
        if self._serving.get(peer, 0) >= self.limits.max_transfers_per_peer:
            raise TransferBusy(f"{self.limits.max_transfers_per_peer} transfers already open for this reader")
        try:
            path = self._local.path(blob_id)
        except BlobError as err:
            raise UnknownBlob(str(err)) from err
        if not path.exists():
            raise UnknownBlob(f"no blob {blob_id}")
        size = path.stat().st_size
        if offset > size:
            raise BlobRefused(f"offset {offset} is past the end of the blob")
        return peer, offset, path, size

    async def _stream(self, request: web.BaseRequest, path: Path, offset: int, size: int) -> web.StreamResponse:
        # aiohttp's FileResponse answers the `bytes=N-` range itself and sends with sendfile(2).
        response = _BlobFile(path, chunk_size=self.limits.chunk_bytes)
        response.headers["x-agora-blob-size"] = str(size)
        response.content_type = "application/octet-stream"
        self.served_from_offset.append(offset)
        await response.prepare(request)
        return response

    # --- fetching -----------------------------------------------------------------------------------
    async def fetch(self, ref: BlobRef, max_bytes: int | None = None) -> bytes:
        """The bytes `ref` names, from this agent's store or else from their owner (checked, then kept here)."""
        path, fresh = await self._obtain(ref, max_bytes)
        # Just verified while it arrived: read without hashing again; an older copy is re-hashed by get().
        return path.read_bytes() if fresh else self.get(ref.blob_id, max_bytes)

    async def fetch_to_store(self, ref: BlobRef, max_bytes: int | None = None) -> Path:
        """Make sure this agent holds the blob `ref` names (fetched and checked if need be); its file."""
        return (await self._obtain(ref, max_bytes))[0]

    async def _obtain(self, ref: BlobRef, max_bytes: int | None) -> tuple[Path, bool]:
        """The blob's file here, and whether this call downloaded (and so just verified) it."""
        cap = min(max_bytes or self.limits.max_blob_bytes, self.limits.max_blob_bytes)
        if ref.size > cap:
            raise BlobTooLarge(f"blob {ref.blob_id} is {ref.size} bytes, over the limit of {cap} bytes")
        if self.has(ref.blob_id):
            return self._local.path(ref.blob_id), False
        self._check_reference(ref)
        async with self._fetching.setdefault(ref.blob_id, asyncio.Lock()):
            if not self.has(ref.blob_id):
                await self._download(ref)
                return self._local.path(ref.blob_id), True
        return self._local.path(ref.blob_id), False

    def _check_reference(self, ref: BlobRef) -> None:
        grant = ref.grant
        if (grant.blob_id, grant.size, grant.owner) != (ref.blob_id, ref.size, ref.owner):
            raise GrantRefused("the reference and its grant disagree")
        if grant.peer != self.address:
            raise GrantRefused("that grant is for another agent")
        if grant.expires <= self._now():
            raise GrantRefused("the grant has expired")
        try:
            verify_digest(ref.owner, grant.signature, grant_digest(grant))
        except SignatureError as err:
            raise GrantRefused(f"the grant is not signed by the blob's owner: {err}") from err

    async def _download(self, ref: BlobRef) -> None:
        """Transfer, verify (hashed once, while the bytes arrived) and keep the blob."""
        url = await self._blob_url(ref.owner, ref.blob_id)
        partial = self._partial / ref.blob_id.removeprefix("0x")
        digest = hashlib.sha256()
        if partial.exists():  # an earlier transfer stopped part-way: resume after what it kept
            with partial.open("rb") as handle:
                while chunk := handle.read(self.limits.chunk_bytes):
                    digest.update(chunk)
        failure: Exception | None = None
        for _ in range(self.limits.fetch_attempts):
            held = partial.stat().st_size if partial.exists() else 0
            if held >= ref.size:
                break
            try:
                await self._receive(url, ref, partial, held, digest)
            except TransferBusy as err:
                failure = err
                await asyncio.sleep(0.2)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                failure = err  # dropped: the next attempt resumes from what arrived
        held = partial.stat().st_size if partial.exists() else 0
        if held < ref.size:
            if isinstance(failure, BlobRefused):
                raise failure
            raise BlobRefused(f"transfer of {ref.blob_id} stopped at {held} of {ref.size} bytes: {failure}")
        if "0x" + digest.hexdigest() != ref.blob_id:
            partial.unlink(missing_ok=True)
            raise BlobHashMismatch(f"the bytes {ref.owner[:16]}… sent do not hash to {ref.blob_id}")
        os.replace(partial, self._local.path(ref.blob_id))
        self._evict(keep=ref.blob_id)

    async def _blob_url(self, owner: str, blob_id: str) -> str:
        _, endpoints = await self._resolver.resolve(owner)
        for endpoint in map(str, endpoints):
            if endpoint.endswith("/submit"):
                try:
                    _, host, port = self._policy.check_url(endpoint)
                    await self._policy.addresses(host, port)
                except EndpointRefused as err:
                    raise BlobRefused(f"the blob owner's endpoint is refused: {err}") from err
                return endpoint.removesuffix("/submit") + "/blobs/" + blob_id
        raise UnknownOwner(f"no endpoint is known for blob owner {owner[:16]}… (is its card in the registry?)")

    async def _receive(self, url: str, ref: BlobRef, partial: Path, offset: int, hasher: Any) -> None:
        """One connection: append the owner's bytes from `offset` to the partial file (and to `hasher`), never
        beyond `ref.size`."""
        expires = int(self._now()) + self.limits.request_ttl
        nonce = secrets.token_hex(16)
        digest = fetch_digest(ref.owner, ref.blob_id, ref.grant.grant_id, offset, expires, nonce)
        headers = dict(zip(_HEADERS, (self.address, ref.grant.grant_id, str(expires), nonce, ""), strict=False))
        headers["x-agora-signature"] = self._identity.sign_digest(digest)
        if offset:
            headers["range"] = f"bytes={offset}-"
        async with self._client().get(url, headers=headers, allow_redirects=False) as response:
            if response.status not in (200, 206):
                detail = f"HTTP {response.status} from the blob owner"
                with contextlib.suppress(ValueError, AttributeError):
                    detail = str(json.loads(await response.content.read(4096)).get("detail", detail))
                raise _REFUSALS.get(response.status, BlobRefused)(detail)
            if response.headers.get("x-agora-blob-size") != str(ref.size):
                raise BlobRefused("the owner announces another size than the reference")
            if (response.status == 206) != bool(offset):
                raise BlobRefused("the owner ignored the requested offset")
            with partial.open("ab") as handle:
                sink = _Sink(handle, hasher)
                received = offset
                try:
                    async for chunk in response.content.iter_chunked(self.limits.chunk_bytes):
                        received += len(chunk)
                        if received > ref.size:
                            await sink.drain()
                            handle.truncate(0)  # nothing of an over-long transfer is kept
                            raise BlobTooLarge(f"the owner sent more than the {ref.size} bytes it announced")
                        await sink.add(chunk)
                finally:
                    await sink.drain()  # what arrived before a drop is kept (and hashed) for the resume

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.limits.timeout)
            self._session = aiohttp.ClientSession(connector=checked_connector(self._policy), timeout=timeout)
        return self._session

    async def close(self) -> None:
        """Close the fetch session."""
        if self._session is not None:
            await self._session.close()


class _BlobFile(web.FileResponse):
    """A FileResponse prepared by the handler itself (so the transfer counts against the reader's cap while it
    runs) that the server's second `prepare` leaves alone."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return None
        return await super().prepare(request)


class _Sink:
    """Writes and hashes arriving bytes in a worker thread, one batch while the next arrives (hashlib and file
    writes release the GIL), so verifying a transfer costs little more than receiving it."""

    BATCH = 1024 * 1024

    def __init__(self, handle: Any, hasher: Any) -> None:
        self._handle = handle
        self._hasher = hasher
        self._batch: list[bytes] = []
        self._size = 0
        self._pending: asyncio.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._size += len(chunk)
        if self._size >= self.BATCH:
            await self._flush()

    async def drain(self) -> None:
        await self._flush()
        if self._pending is not None:
            await self._pending
            self._pending = None

    async def _flush(self) -> None:
        if self._pending is not None:
            await self._pending  # one batch in flight at a time: order is kept
        batch, self._batch, self._size = self._batch, [], 0
        data = batch[0] if len(batch) == 1 else b"".join(batch)  # chunks arrive about a batch each: no copy
        self._pending = asyncio.get_running_loop().run_in_executor(None, self._consume, data) if data else None

    def _consume(self, data: bytes) -> None:
        self._handle.write(data)
        self._hasher.update(data)


def _range_start(header: str | None) -> int:
    """The start of a `bytes=N-` range (0 without one); other range forms are refused."""
    if not header:
        return 0
    unit, _, spec = header.partition("=")
    start, dash, end = spec.partition("-")
    if unit.strip() != "bytes" or not dash or end or not start.isdigit():
        raise ValueError(f"only 'Range: bytes=N-' is served, not {header[:40]!r}")
    return int(start)
