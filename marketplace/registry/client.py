"""Async client agents use to publish their card, heartbeat, search the registry and resolve addresses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from marketplace.registry.models import AgentEntry, Health, SearchPage, WriteAccepted
from protocols.cards import AgentCard, Role, SignedWrite, WriteAction, sign_write

log = logging.getLogger(__name__)


class RegistryError(RuntimeError):
    """The registry answered with an error {code, message}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"registry answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""Largest registry answer read (a full search page of the largest cards is about 2 MB)."""


class RegistryClient:
    """One agent's view of a registry; writes are signed with `identity` (a uagents_core Identity).

    Writes name the registry they are for: `registry_id` when given (pinned), else the id the registry
    reports in GET /v1/health, learned at the first write. A pinned id also protects against a registry
    that reports another registry's id in order to replay this agent's writes there.
    """

    def __init__(
        self,
        base_url: str,
        identity: Any = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        registry_id: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.clock = clock
        self._own_session = session is None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._pinned = registry_id is not None
        self._registry_id = registry_id

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (created on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        """Stop heartbeats and close the session if this client opened it."""
        await self.stop_heartbeats()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            raw = await _read_capped(response)
            body = json.loads(raw) if raw.strip() else None
            if response.status >= 400:
                body = body if isinstance(body, dict) else {}
                raise RegistryError(response.status, body.get("code", "error"), body.get("message", ""))
            return response.status, body

    async def registry_id(self) -> str:
        """The id this client's writes name: the pinned one, else the one the registry reports (then cached)."""
        if self._registry_id is None:
            _, body = await self._request("GET", "/v1/health")
            self._registry_id = Health.model_validate(body).registry_id
        return self._registry_id

    async def sign(self, action: WriteAction, card: AgentCard | None = None) -> SignedWrite:
        """A fresh write signed by this client's identity, for this client's registry."""
        if self.identity is None:
            raise ValueError("this RegistryClient has no identity to sign writes with")
        registry = await self.registry_id()
        return sign_write(self.identity, action, card, registry=registry, timestamp=int(self.clock()))

    async def _write(self, method: str, path: str, action: WriteAction, card: AgentCard | None = None) -> Any:
        try:
            return await self._send_write(method, path, action, card)
        except RegistryError as exc:
            if exc.code != "wrong_registry" or self._pinned:
                raise
        self._registry_id = None  # the registry has a new id (a new database): learn it and sign once more
        return await self._send_write(method, path, action, card)

    async def _send_write(self, method: str, path: str, action: WriteAction, card: AgentCard | None) -> Any:
        write = await self.sign(action, card)
        _, body = await self._request(method, path, data=write.model_dump_json())
        return body

    async def register(self, card: AgentCard) -> AgentEntry:
        """Register a new card (fails with code `exists` if the agent is listed)."""
        return AgentEntry.model_validate(await self._write("POST", "/v1/agents", "register", card))

    async def update(self, card: AgentCard) -> AgentEntry:
        """Replace the listed card."""
        return AgentEntry.model_validate(await self._write("PUT", f"/v1/agents/{card.address}", "update", card))

    async def publish(self, card: AgentCard) -> AgentEntry:
        """Register the card, or update it if the agent is already listed."""
        try:
            return await self.register(card)
        except RegistryError as exc:
            if exc.code != "exists":
                raise
            return await self.update(card)

    async def heartbeat(self) -> WriteAccepted:
        """Keep this agent's entry alive."""
        body = await self._write("POST", f"/v1/agents/{self._address()}/heartbeat", "heartbeat")
        return WriteAccepted.model_validate(body)

    async def deregister(self) -> WriteAccepted:
        """Remove this agent's entry."""
        body = await self._write("POST", f"/v1/agents/{self._address()}/deregister", "deregister")
        return WriteAccepted.model_validate(body)

    def _address(self) -> str:
        if self.identity is None:
            raise ValueError("this RegistryClient has no identity to sign writes with")
        return str(self.identity.address)

    def start_heartbeats(self, interval: float, card: AgentCard | None = None) -> None:
        """Heartbeat every interval seconds in the background; with card, republish if the entry lapsed."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.heartbeat()
                except RegistryError as exc:
                    if exc.code == "not_found" and card is not None:
                        await self.publish(card)
                    else:
                        log.warning("heartbeat refused: %s", exc)
                except (aiohttp.ClientError, TimeoutError) as exc:  # registry restarting: try again next beat
                    log.warning("heartbeat failed: %s", exc)

        self._heartbeat_task = asyncio.get_running_loop().create_task(beat())

    async def stop_heartbeats(self) -> None:
        """Stop background heartbeats."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None

    async def get(self, address: str) -> AgentEntry | None:
        """The live entry of an agent, or None."""
        try:
            _, body = await self._request("GET", f"/v1/agents/{address}")
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        return AgentEntry.model_validate(body)

    async def search(
        self,
        *,
        role: Role | None = None,
        job_kind: str | None = None,
        model_id: str | None = None,
        max_price: int | None = None,
        min_reputation: int | None = None,
        seen_within: int | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> SearchPage:
        """One page of live agents matching the filters, best first (price, reputation, recency)."""
        params = {
            "role": role,
            "job_kind": job_kind,
            "model_id": model_id,
            "max_price": max_price,
            "min_reputation": min_reputation,
            "seen_within": seen_within,
            "limit": limit,
            "offset": offset,
        }
        query = {k: str(v) for k, v in params.items() if v is not None}
        _, body = await self._request("GET", "/v1/search", params=query)
        return SearchPage.model_validate(body)

    async def resolve(self, address: str) -> list[str] | None:
        """Endpoints of a live agent, or None if the registry does not list it."""
        try:
            _, body = await self._request("GET", f"/v1/resolve/{address}")
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        return [str(e) for e in body["endpoints"]]


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body, refused (RegistryError `too_large`) past MAX_RESPONSE_BYTES without reading the rest."""
    declared = response.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise RegistryError(response.status, "too_large", f"answer of {declared} bytes > {MAX_RESPONSE_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise RegistryError(response.status, "too_large", f"answer longer than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
