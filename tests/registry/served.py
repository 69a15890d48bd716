"""A registry served from a background thread on a real loopback port (for sync clients: schemathesis, the CLI)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from marketplace.registry import RegistrySettings, create_app


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served_registry(settings: RegistrySettings, **app_kwargs: Any) -> Iterator[str]:
    """Run create_app(settings, **app_kwargs) in its own thread and event loop; yields the base URL."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    runner = web.AppRunner(create_app(settings, **app_kwargs), access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, name="registry-under-test", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
