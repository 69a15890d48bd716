"""HTTP transport in the uAgents envelope format: an aiohttp receiver and a keep-alive, connection-reusing sender."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from uagents.communication import Dispenser
from uagents_core.envelope import Envelope
from uagents_core.identity import Identity
from uagents_core.types import DeliveryStatus, MsgStatus

from agents.crypto import sign_envelope
from agents.http import KeepAlivePool, ResponseTooLarge
from agents.mods import Limits, Rejected

log = logging.getLogger("agora.transport")

Receiver = Callable[[bytes, bool], Awaitable[bytes | None]]
"""Takes a raw envelope body and whether the sender waits for the reply in the HTTP response (uAgents "sync");
returns the reply envelope to send back (or None), raises Rejected to refuse the envelope."""
SYNC_HEADER = "x-uagents-connection"
RESPONSE_OVERHEAD = 4 * 1024
"""Bytes a peer's HTTP response may exceed `Limits.max_message_bytes` by (an ErrorReply body, JSON framing)."""


class EnvelopeServer:
    """Receives uAgents envelopes on POST /submit (loopback by default) and hands them to a Receiver; `routes`
    maps other path prefixes to their handlers (an agent's blobs: agents/blobs.py)."""

    def __init__(
        self,
        host: str,
        port: int,
        receiver: Receiver,
        max_body: int,
        routes: dict[str, Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._receiver = receiver
        self._max_body = max_body
        self._routes = dict(routes or {})
        self._handler: web.Server | None = None
        self._listener: asyncio.Server | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (known after start)."""
        if self._bound_port is None:
            raise RuntimeError("server not started")
        return self._bound_port

    async def start(self) -> None:
        """Bind and start serving."""
        # aiohttp's low-level server: no router or middleware chain, one function sees every request;
        # its requests read at most max_body, chunked bodies included (aiohttp's default cap is 1 MiB).
        self._handler = web.Server(self._route, access_log=None, request_factory=self._make_request)
        self._listener = await asyncio.get_running_loop().create_server(
            self._handler, self._host, self._port, reuse_address=True
        )
        self._bound_port = int(self._listener.sockets[0].getsockname()[1])

    def _make_request(
        self,
        message: Any,
        payload: Any,
        protocol: Any,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        loop = asyncio.get_running_loop()
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=self._max_body)

    async def stop(self) -> None:
        """Stop serving and close connections."""
        if self._listener is not None and self._handler is not None:
            self._listener.close()
            await self._handler.shutdown(1.0)
            self._listener = None

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        for prefix, handler in self._routes.items():
            if request.path.startswith(prefix):
                return await handler(request)
        if request.path != "/submit":
            return web.Response(status=404, body=b'{"code": "not_found", "detail": "POST /submit"}')
        if request.method == "HEAD":
            return await self._probe(request)
        if request.method != "POST":
            return web.Response(status=405)
        return await self._submit(request)

    async def _probe(self, _request: web.BaseRequest) -> web.Response:
        return web.Response(headers={"x-uagents-status": "ready"})

    async def _submit(self, request: web.BaseRequest) -> web.Response:
        return await submit(request, self._receiver, self._max_body)


async def submit(request: web.BaseRequest, receiver: Receiver, max_body: int) -> web.Response:
    """Answer a POSTed envelope: refuse an oversized body unread, else hand it to `receiver`; the reply envelope (or
    `{}`) in the response, a refusal as a JSON ErrorReply-shaped body with its HTTP status."""
    if request.content_length is not None and request.content_length > max_body:
        return _error_response(Rejected("too_large", f"{request.content_length} bytes > {max_body}", 413))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error_response(Rejected("too_large", f"body > {max_body} bytes", 413))
    try:
        reply = await receiver(body, request.headers.get(SYNC_HEADER) == "sync")
    except Rejected as err:
        return _error_response(err)
    return web.Response(body=reply or b"{}", content_type="application/json")


def _error_response(err: Rejected) -> web.Response:
    body = json.dumps({"code": err.code, "detail": err.detail}).encode()
    return web.Response(status=err.status, body=body, content_type="application/json")


class DeliveryError(RuntimeError):
    """An envelope could not be delivered; `code`/`detail` come from the receiver's ErrorReply when it sent one."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class EndpointRefused(ValueError):
    """An endpoint this agent's EndpointPolicy does not let it post to (never connected to)."""


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
AUTO_CLASSES = frozenset({"loopback", "private"})
"""Address classes an agent reaches by default when it advertises itself at one of them."""


def address_class(address: IpAddress) -> str:
    """`public`, `loopback`, `private` (RFC 1918, shared, unique-local), `link-local` or `reserved` (all else)."""
    # An IPv6 address that carries an IPv4 one reaches that IPv4 host: classify what it reaches.
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_class(embedded)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if any(address in net for net in _PRIVATE_NETWORKS):
        return "private"
    if address.is_global and not address.is_multicast:
        return "public"
    return "reserved"


def host_class(host: str) -> str | None:
    """The address class of a host an agent binds or advertises (None: all interfaces); names count as public."""
    if host.lower() in ("localhost", "localhost."):
        return "loopback"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "public"
    return None if address.is_unspecified else address_class(address)


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Which peer endpoints an agent posts to, checked on the resolved addresses before connecting.

    Only http(s) URLs. Public addresses always, plus the address classes in `internal`; with `allowed_hosts`
    only those host names, addresses and networks. `for_agent` derives it from `Limits`: an agent that
    advertises itself on loopback (agora's default) reaches loopback peers, one on a private address
    reaches private ones, and nothing reaches link-local (cloud metadata) or reserved addresses unless
    `allow_private_endpoints=True` or `allowed_endpoint_hosts` names them. Remaining limit: on loopback
    any local service is reachable, with a POST of a signed envelope.
    """

    internal: frozenset[str] = frozenset({"loopback"})
    any_address: bool = False
    allowed_hosts: frozenset[str] | None = None

    @classmethod
    def for_agent(cls, limits: Limits, advertised_host: str) -> EndpointPolicy:
        """The policy of an agent with these limits that peers reach at `advertised_host`."""
        if limits.allow_private_endpoints is None:
            own = host_class(advertised_host)
            internal = frozenset({own}) & AUTO_CLASSES if own is not None else frozenset()
        else:
            internal = frozenset()
        allowed = None
        if limits.allowed_endpoint_hosts is not None:
            allowed = frozenset(host.lower() for host in limits.allowed_endpoint_hosts)
        return cls(internal, limits.allow_private_endpoints is True, allowed)

    def _networks(self) -> Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        for entry in self.allowed_hosts or ():
            try:
                yield ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                continue  # a host name, matched on the URL

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise EndpointRefused unless every address `host` resolved to may be posted to."""
        if self.allowed_hosts is not None and host.lower().rstrip(".") in self.allowed_hosts:
            return
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
            if self.allowed_hosts is not None:
                if not any(address in net for net in self._networks()):
                    raise EndpointRefused(f"{host} ({address}) is not in allowed_endpoint_hosts")
                continue
            kind = address_class(address)
            if not self.any_address and kind != "public" and kind not in self.internal:
                raise EndpointRefused(f"{host} is a {kind} address ({address}); see Limits.allow_private_endpoints")

    async def addresses(self, host: str, port: int) -> list[str]:
        """Resolve `host` and check every address; returns them, to connect to in order."""
        try:
            addresses = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise EndpointRefused(f"{host} resolves to no address")
        self.check(host, addresses)
        return addresses

    def check_url(self, endpoint: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an http(s) endpoint; raises EndpointRefused for any other kind of URL."""
        parts = urlsplit(endpoint)
        try:
            port = parts.port
        except ValueError:
            raise EndpointRefused(f"bad port in {endpoint[:100]!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointRefused(f"not an http(s) URL: {endpoint[:100]!r}")
        return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names whose addresses the policy does not allow (aiohttp connects to these)."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve, then check every address."""
        results = await self._inner.resolve(host, port, family)
        self._policy.check(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


def checked_connector(policy: EndpointPolicy, limit: int = 64) -> aiohttp.TCPConnector:
    """An aiohttp connector that resolves names through `policy` (IP literals must be checked by the caller)."""
    return aiohttp.TCPConnector(limit=limit, keepalive_timeout=30.0, resolver=_CheckedResolver(policy))


class EnvelopeSender:
    """Seals (nonce + expiry + signature) and posts envelopes on keep-alive connections (aiohttp for https).

    Endpoints go through `policy` before any connection is made, and a response longer than
    `max_response_bytes` fails the delivery without its body being read.
    """

    def __init__(
        self,
        identity: Identity,
        now: Callable[[], float],
        timeout: float = 10.0,
        *,
        policy: EndpointPolicy | None = None,
        max_response_bytes: int = Limits().max_message_bytes + RESPONSE_OVERHEAD,
    ) -> None:
        self._identity = identity
        self._now = now
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._policy = policy or EndpointPolicy()
        self._max_response = max_response_bytes
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._plain = KeepAlivePool(timeout, max_response_bytes=max_response_bytes, resolve=self._policy.addresses)
        # Microsecond start keeps nonces increasing across restarts without persisting a counter.
        self._nonces = itertools.count(time.time_ns() // 1000)

    def seal(self, envelope: Envelope, ttl: float) -> Envelope:
        """Give the envelope a fresh nonce and an expiry (if it has none) and sign it."""
        envelope.nonce = next(self._nonces)
        if envelope.expires is None:
            envelope.expires = int(self._now() + ttl)
        sign_envelope(envelope, self._identity)
        return envelope

    def _session(self, endpoint: str) -> aiohttp.ClientSession:
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        session = self._sessions.get(origin)
        if session is None or session.closed:
            session = aiohttp.ClientSession(connector=checked_connector(self._policy), timeout=self._timeout)
            self._sessions[origin] = session
        return session

    async def post(self, envelope: Envelope, endpoints: list[str], sync: bool = False) -> tuple[MsgStatus, bytes]:
        """Post a sealed envelope to the first endpoint that accepts it; also returns the response body, which
        carries the reply envelope when `sync` asks the peer to answer in the same HTTP exchange."""
        body = envelope.model_dump_json().encode()
        headers = {"content-type": "application/json"}
        if sync:
            headers[SYNC_HEADER] = "sync"
        errors: list[str] = []
        for endpoint in endpoints:
            try:
                status, raw = await self._post(endpoint, body, headers)
            except EndpointRefused as err:
                errors.append(f"endpoint_refused: {err}")
                continue
            except ResponseTooLarge as err:
                errors.append(f"response_too_large: {err}")
                continue
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError, aiohttp.ClientError) as err:
                errors.append(f"unreachable: {err.__class__.__name__} {err}")
                continue
            if status == 200:
                return _status(envelope, DeliveryStatus.DELIVERED, "delivered", endpoint), raw
            errors.append(_error_text(status, raw.decode(errors="replace")))
        return _status(envelope, DeliveryStatus.FAILED, "; ".join(errors) or "no endpoint", ""), b""

    async def _post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        scheme, host, port = self._policy.check_url(endpoint)
        if scheme == "http":
            return await self._plain.post(endpoint, body, headers)
        if _is_address(host):
            await self._policy.addresses(host, port)  # aiohttp skips its resolver (where names are checked) for these
        session = self._session(endpoint)
        async with session.post(endpoint, data=body, headers=headers, allow_redirects=False) as resp:
            if resp.content_length is not None and resp.content_length > self._max_response:
                raise ResponseTooLarge(f"response of {resp.content_length} bytes > {self._max_response}")
            return resp.status, await _read_capped(resp.content, self._max_response)

    async def close(self) -> None:
        """Close every pooled connection and session."""
        await self._plain.close()
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or ResponseTooLarge as soon as more than `limit` bytes arrived (chunked bodies too)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(f"response longer than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_text(status: int, text: str) -> str:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        return f"http_{status}: {text[:200]}"
    if isinstance(data, dict) and "code" in data:
        return f"{data['code']}: {data.get('detail', '')}"
    return f"http_{status}: {text[:200]}"


def _status(envelope: Envelope, status: DeliveryStatus, detail: str, endpoint: str) -> MsgStatus:
    return MsgStatus(
        status=status, detail=detail, destination=envelope.target, endpoint=endpoint, session=envelope.session
    )


class PooledDispenser(Dispenser):  # type: ignore[misc]  # uagents is untyped
    """Replaces uAgents' serial connection-per-message dispenser: envelopes go out at once on pooled sessions."""

    def __init__(self, sender: EnvelopeSender, ttl: float) -> None:
        super().__init__()
        self._sender = sender
        self._ttl = ttl
        self._tasks: set[asyncio.Task[None]] = set()

    def add_envelope(
        self, envelope: Envelope, endpoints: list[str], response_future: asyncio.Future[Any], sync: bool = False
    ) -> None:
        """Seal and send now (uAgents' context signs without a nonce; we re-seal so replay ids are unique)."""
        task = asyncio.get_running_loop().create_task(self._deliver(envelope, endpoints, response_future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, envelope: Envelope, endpoints: list[str], response_future: asyncio.Future[Any]) -> None:
        try:
            status, _ = await self._sender.post(self._sender.seal(envelope, self._ttl), endpoints)
        except Exception as err:  # a send failure must never kill the agent
            log.warning("send failed: %s", err)
            status = _status(envelope, DeliveryStatus.FAILED, str(err), "")
        if status.status != DeliveryStatus.DELIVERED:
            log.warning("delivery to %s failed: %s", envelope.target[:16], status.detail)
        if not response_future.done():
            response_future.set_result(status)

    async def run(self) -> None:
        """Idle until cancelled, then finish in-flight sends and close the sessions."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self._sender.close()
