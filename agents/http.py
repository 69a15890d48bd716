"""A minimal keep-alive HTTP/1.1 client for posting envelopes over plain http (loopback, private networks).

aiohttp's general-purpose client costs a few hundred microseconds of Python per request; posting an
envelope needs one request line, three headers and a Content-Length body. https endpoints keep aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]

MAX_HEADER_BYTES = 16 * 1024
"""Status line plus headers of one response; an agent endpoint sends a handful of short ones."""

Resolve = Callable[[str, int], Awaitable[list[str]]]
"""Turns (host, port) into the addresses to try, or raises (agents.transport.EndpointPolicy.addresses)."""


class HttpError(OSError):
    """The peer sent something that is not a well-formed HTTP/1.1 response."""


class ResponseTooLarge(HttpError):
    """The peer's response is longer than the caller accepts (refused before its body is read)."""


class KeepAlivePool:
    """Idle connections per (host, port), reused for successive POSTs."""

    def __init__(
        self,
        timeout: float,
        max_idle: int = 64,
        *,
        max_response_bytes: int = 1024 * 1024,
        resolve: Resolve | None = None,
    ) -> None:
        self._timeout = timeout
        self._max_idle = max_idle
        self._max_response = max_response_bytes
        self._resolve = resolve
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST `body` and return (status, response body); a body over `max_response_bytes` raises ResponseTooLarge."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"KeepAlivePool posts to http:// URLs only, not {url!r}")
        key = (parts.hostname, parts.port or 80)
        head = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        request = (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body
        async with asyncio.timeout(self._timeout):
            idle = self._idle.get(key)
            if idle:
                connection = idle.pop()
                try:
                    return await self._exchange(key, connection, request)
                except ResponseTooLarge:
                    raise
                except (OSError, asyncio.IncompleteReadError):
                    pass  # the peer closed an idle connection: retry once on a fresh one
            connection = await self._connect(*key)
            return await self._exchange(key, connection, request)

    async def _connect(self, host: str, port: int) -> _Connection:
        # Connect to the addresses the policy checked, not to a second lookup of the name (DNS rebinding).
        addresses = await self._resolve(host, port) if self._resolve is not None else [host]
        failure: OSError | None = None
        for address in addresses:
            try:
                return await asyncio.open_connection(address, port, limit=MAX_HEADER_BYTES)
            except OSError as err:  # e.g. `localhost` resolves to ::1 first, the peer listens on 127.0.0.1
                failure = err
        raise failure or OSError(f"{host} resolves to no address")

    async def _exchange(self, key: tuple[str, int], connection: _Connection, request: bytes) -> tuple[int, bytes]:
        reader, writer = connection
        try:
            writer.write(request)
            header_bytes = 0
            status_line = await _read_line(reader)
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise HttpError(f"bad status line {status_line[:60]!r}")
            status = int(parts[1])
            length, keep = 0, parts[0] == b"HTTP/1.1"
            while (line := await _read_line(reader)) != b"\r\n":
                header_bytes += len(line)
                if header_bytes > MAX_HEADER_BYTES:
                    raise HttpError(f"response headers longer than {MAX_HEADER_BYTES} bytes")
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"connection":
                    keep = value.strip().lower() == b"keep-alive" or (keep and value.strip().lower() != b"close")
                elif name == b"transfer-encoding":
                    raise HttpError("chunked responses are not expected from an agent endpoint")
            if length > self._max_response:
                # Refused on the declared length: nothing of the body is read, the connection is dropped.
                raise ResponseTooLarge(f"response of {length} bytes > {self._max_response}")
            payload = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        idle = self._idle.setdefault(key, [])
        if keep and len(idle) < self._max_idle:
            idle.append(connection)
        else:
            writer.close()
        return status, payload

    async def close(self) -> None:
        """Close every idle connection."""
        pools, self._idle = list(self._idle.values()), {}
        for pool in pools:
            for _, writer in pool:
                writer.close()


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError as err:  # a line longer than the reader's limit: not an agent's answer
        raise HttpError(f"response header line longer than {MAX_HEADER_BYTES} bytes") from err
