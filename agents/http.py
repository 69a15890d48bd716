"""A minimal keep-alive HTTP/1.1 client for posting envelopes over plain http (loopback, private networks).

aiohttp's general-purpose client costs a few hundred microseconds of Python per request; posting an
envelope needs one request line, three headers and a Content-Length body. https endpoints keep aiohttp.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpError(OSError):
    """The peer sent something that is not a well-formed HTTP/1.1 response."""


class KeepAlivePool:
    """Idle connections per (host, port), reused for successive POSTs."""

    def __init__(self, timeout: float, max_idle: int = 64) -> None:
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST `body` and return (status, response body)."""
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
                except (OSError, asyncio.IncompleteReadError):
                    pass  # the peer closed an idle connection: retry once on a fresh one
            connection = await asyncio.open_connection(*key)
            return await self._exchange(key, connection, request)

    async def _exchange(self, key: tuple[str, int], connection: _Connection, request: bytes) -> tuple[int, bytes]:
        reader, writer = connection
        try:
            writer.write(request)
            status_line = await reader.readuntil(b"\r\n")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise HttpError(f"bad status line {status_line[:60]!r}")
            status = int(parts[1])
            length, keep = 0, parts[0] == b"HTTP/1.1"
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"connection":
                    keep = value.strip().lower() == b"keep-alive" or (keep and value.strip().lower() != b"close")
                elif name == b"transfer-encoding":
                    raise HttpError("chunked responses are not expected from an agent endpoint")
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
