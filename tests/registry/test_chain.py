"""The registry against the real anvil chain: reputation from AgentRegistry, economy events into the feed and SSE."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from marketplace.chain import ChainConnection, ChannelsClient, LocalChain, TokenClient, Voucher, sign_voucher
from marketplace.chain.agent_registry import AgentRegistryClient, AgentRole
from marketplace.registry.app import SERVICE
from marketplace.registry.reputation import ChainReputation
from protocols.cards import sign_write
from tests.registry.conftest import identity, make_card, registry_id_of

pytestmark = pytest.mark.chain


async def _wait_for(predicate: Any, within: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_reputation_readFromAgentRegistryReceipts(
    chain_registry: TestClient[Any, Any], conn: ChainConnection, chain: LocalChain
) -> None:
    seller = chain.accounts[3]
    # Five customers pay the seller 20 AGT each through channels; it claims them in one claimMany, which
    # PaymentChannels records in AgentRegistry as paid receipts (one per channel, each with its payer).
    vouchers = []
    for payer in chain.accounts[4:9]:
        await TokenClient(conn).transfer(payer.address, 20 * 10**18)
        as_payer = conn.with_account(payer)
        channels = ChannelsClient(as_payer)
        await TokenClient(as_payer).approve(channels.address, 20 * 10**18)
        expiry = int((await conn.w3.eth.get_block("latest"))["timestamp"]) + 7_200
        opened = await channels.open_channel(seller.address, 20 * 10**18, expiry)
        nonce = (await channels.get_channel(opened.channel_id)).nonce
        vouchers.append(sign_voucher(payer, Voucher(opened.channel_id, nonce, 20 * 10**18), channels.domain))
    await ChannelsClient(conn.with_account(seller)).claim_many(vouchers)
    registry_contract = AgentRegistryClient(conn)
    expected = await ChainReputation(registry_contract).reputation(seller.address)
    assert (expected.count, expected.volume, expected.score) == (5, 100 * 10**18, 1464)

    alice, mallory = identity("chain-alice"), identity("chain-mallory")
    # The owner account vouches on chain for its agent; Mallory only writes the same owner into her card.
    await AgentRegistryClient(conn.with_account(seller)).register(alice.address, AgentRole.SELLER)
    for who in (alice, mallory):
        card = make_card(who, owner=seller.address)
        write = sign_write(who, "register", card, registry=registry_id_of(chain_registry))
        response = await chain_registry.post("/v1/agents", data=write.model_dump_json())
        assert response.status == 201

    async def ranked() -> Any:
        page = await (await chain_registry.get("/v1/search", params={"min_reputation": "1000"})).json()
        return page["results"]

    results = await _wait_for(ranked)  # the registry reads the chain right after the card is published
    assert [r["card"]["address"] for r in results] == [alice.address]
    assert results[0]["reputation"] == {"count": 5, "volume": 100 * 10**18, "score": 1464}
    borrowed = await (await chain_registry.get(f"/v1/agents/{mallory.address}")).json()
    assert borrowed["reputation"] == {"count": 0, "volume": 0, "score": 0}
    service = chain_registry.app[SERVICE]
    assert isinstance(service.reputation, ChainReputation)
    assert await service.refresh_reputation() == 1


async def test_events_tokenTransferReachesFeedAndStream(
    chain_registry: TestClient[Any, Any], conn: ChainConnection, chain: LocalChain
) -> None:
    stream = await chain_registry.get("/v1/events/stream")
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert await stream.content.readline() == b": connected\n"
    recipient = chain.accounts[5].address
    receipt = await TokenClient(conn).transfer(recipient, 1234 * 10**15)
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()

    async def next_chain_event() -> dict[str, Any]:
        kind = None
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "chain":
                event: dict[str, Any] = json.loads(line.removeprefix("data: "))
                if event["tx_hash"] == tx_hash:
                    return event

    event = await asyncio.wait_for(next_chain_event(), 10)
    assert (event["contract"], event["event"]) == ("AgoraToken", "Transfer")
    assert event["args"]["value"] == str(1234 * 10**15)
    assert event["summary"].endswith(": 1.234 AGT")
    stream.close()

    recent = await (await chain_registry.get("/v1/events")).json()
    assert tx_hash in [e["tx_hash"] for e in recent["events"]]
    health = await (await chain_registry.get("/v1/health")).json()
    assert health["chain_events"] is True
