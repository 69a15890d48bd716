"""The test suite itself must not reach the outside world."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import OutboundConnectionError


def test_outbound_connection_isRefused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(OutboundConnectionError):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1, never routable


def test_loopback_connection_isAllowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.connect(server.getsockname())
            conn, _ = server.accept()
            conn.close()
