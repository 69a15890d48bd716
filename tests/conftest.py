"""Shared fixtures: no outbound network, and one local anvil chain per session with per-test snapshots."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from marketplace.chain import ChainConnection, LocalChain, local_chain


class OutboundConnectionError(AssertionError):
    """A test tried to reach a non-loopback address."""


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already be outbound


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OutboundConnectionError(f"outbound connection to {address!r} blocked in tests")
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OutboundConnectionError(f"outbound connection to {address!r} blocked in tests")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_outbound_network() -> Iterator[None]:
    """Fail any test that opens a TCP/UDP connection to anything but loopback."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def session_chain() -> Iterator[LocalChain]:
    """One anvil with agora deployed (via Ape) for the whole session."""
    with local_chain(accounts=10) as chain:
        yield chain


@pytest.fixture
def chain(session_chain: LocalChain) -> Iterator[LocalChain]:
    """The session chain, rolled back after each test so tests stay independent."""
    snapshot = session_chain.snapshot()
    yield session_chain
    session_chain.revert(snapshot)


@pytest.fixture
async def conn(chain: LocalChain) -> AsyncIterator[ChainConnection]:
    """An async connection signing as the treasury; `conn.with_account(a)` signs as another account."""
    async with chain.connect() as connection:
        yield connection
