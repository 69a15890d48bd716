"""Registry HTTP API: every endpoint, signed-write refusals that change nothing, limits, expiry and ranking."""

from __future__ import annotations

from typing import Any

from protocols.cards import Offering, write_digest
from tests.registry.conftest import Registry, identity, make_card, owner_of


async def _snapshot(registry: Registry) -> tuple[Any, int]:
    """Everything a refused write could have changed: the search view and the remembered nonces."""
    _, page = await registry.get("/v1/search", limit=100)
    return page, await registry.service.store.nonce_count()


async def test_register_get_resolve_search_roundTrip(registry: Registry) -> None:
    alice = identity("alice")
    card = await registry.register(alice)
    status, entry = await registry.get(f"/v1/agents/{alice.address}")
    assert status == 200
    assert entry["card"] == card.model_dump(mode="json")
    assert entry["expires_at"] == registry.clock() + 120
    status, resolved = await registry.get(f"/v1/resolve/{alice.address}")
    assert (status, resolved) == (200, {"address": alice.address, "endpoints": card.endpoints})
    status, page = await registry.get("/v1/search", role="seller")
    assert status == 200
    assert [r["card"]["address"] for r in page["results"]] == [alice.address]
    assert page["results"][0]["best_price"] == 10**15


async def test_register_twice_refusedAsExists(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    before = await _snapshot(registry)
    status, body = await registry.send(registry.sign(alice, "register", make_card(alice, name="other")))
    assert (status, body["code"]) == (409, "exists")
    assert (await _snapshot(registry))[0] == before[0]


async def test_update_replacesCardAndOfferings(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    registry.clock.advance(10)
    new = make_card(alice, name="alice v2", offerings=[Offering(model_id="clf", job_kind="training", price_per_unit=7)])
    status, entry = await registry.send(registry.sign(alice, "update", new))
    assert status == 200
    assert entry["card"]["name"] == "alice v2"
    assert entry["last_seen"] == registry.clock()
    _, page = await registry.get("/v1/search", job_kind="inference")
    assert page["results"] == []
    _, page = await registry.get("/v1/search", job_kind="training")
    assert page["results"][0]["best_price"] == 7


async def test_update_unknownAgent_notFound(registry: Registry) -> None:
    bob = identity("bob")
    status, body = await registry.send(registry.sign(bob, "update", make_card(bob)))
    assert (status, body["code"]) == (404, "not_found")


async def test_heartbeat_extendsExpiry(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    registry.clock.advance(100)
    status, body = await registry.send(registry.sign(alice, "heartbeat"))
    assert status == 200
    assert body == {"address": alice.address, "action": "heartbeat", "expires_at": registry.clock() + 120}
    registry.clock.advance(100)  # 200 s after registering, 100 s after the heartbeat: still listed
    assert (await registry.get(f"/v1/agents/{alice.address}"))[0] == 200


async def test_heartbeat_unknownAgent_notFound(registry: Registry) -> None:
    status, body = await registry.send(registry.sign(identity("ghost"), "heartbeat"))
    assert (status, body["code"]) == (404, "not_found")


async def test_deregister_removesEntry(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    status, body = await registry.send(registry.sign(alice, "deregister"))
    assert (status, body) == (200, {"address": alice.address, "action": "deregister", "expires_at": None})
    assert (await registry.get(f"/v1/agents/{alice.address}"))[0] == 404
    status, body = await registry.get(f"/v1/resolve/{alice.address}")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await registry.send(registry.sign(alice, "deregister"))
    assert status == 404


async def test_unsignedWrites_refused401_nothingChanged(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    before = await _snapshot(registry)
    for action, card in [("register", make_card(identity("eve"))), ("update", make_card(alice, name="x"))]:
        body = registry.sign(identity("eve") if action == "register" else alice, action, card).model_dump(mode="json")
        for unsigned in ({k: v for k, v in body.items() if k != "signature"}, {**body, "signature": ""}):
            status, answer = await registry.send(unsigned)
            assert (status, answer["code"]) == (401, "unsigned"), answer
    for action in ("heartbeat", "deregister"):
        body = registry.sign(alice, action).model_dump(mode="json")
        del body["signature"]
        assert (await registry.send(body))[0] == 401
    assert await _snapshot(registry) == before


async def test_wronglySignedWrites_refused401_nothingChanged(registry: Registry) -> None:
    alice, mallory = identity("alice"), identity("mallory")
    await registry.register(alice)
    before = await _snapshot(registry)
    # Mallory signs a card that claims Alice's address.
    card = make_card(alice, name="pwned")
    ts = int(registry.clock())
    forged = {
        "action": "update",
        "address": alice.address,
        "card": card.model_dump(mode="json"),
        "nonce": "ab" * 16,
        "timestamp": ts,
        "registry": registry.service.registry_id,
        "signature": mallory.sign_digest(
            write_digest("update", alice.address, card, "ab" * 16, ts, registry.service.registry_id)
        ),
    }
    status, answer = await registry.send(forged)
    assert (status, answer["code"]) == (401, "bad_signature")
    # Alice's genuine signature, card altered in flight (endpoint redirected).
    genuine = registry.sign(alice, "update", make_card(alice)).model_dump(mode="json")
    genuine["card"]["endpoints"] = ["http://attacker.example:80/submit"]
    assert (await registry.send(genuine))[1]["code"] == "bad_signature"
    # A signature over another nonce, and a heartbeat signed by someone else.
    moved = {**registry.sign(alice, "heartbeat").model_dump(mode="json"), "nonce": "00" * 16}
    assert (await registry.send(moved))[1]["code"] == "bad_signature"
    hijack = {**registry.sign(mallory, "deregister").model_dump(mode="json"), "address": alice.address}
    assert (await registry.send(hijack))[0] == 401
    assert await _snapshot(registry) == before
    # A register of a new address signed by the wrong key changes nothing either.
    fake_register = registry.sign(mallory, "register", make_card(mallory)).model_dump(mode="json")
    fake_register["signature"] = registry.sign(alice, "heartbeat").signature
    assert (await registry.send(fake_register))[0] == 401
    assert await _snapshot(registry) == before


async def test_replayedWrites_refused403_nothingChanged(registry: Registry) -> None:
    alice = identity("alice")
    old_update = registry.sign(alice, "update", make_card(alice, name="v1"))
    await registry.register(alice)
    assert (await registry.send(old_update))[0] == 200
    newer = registry.sign(alice, "update", make_card(alice, name="v2"))
    assert (await registry.send(newer))[0] == 200
    before = await _snapshot(registry)
    status, answer = await registry.send(old_update)  # trying to roll the card back to v1
    assert (status, answer["code"]) == (403, "replayed")
    beat = registry.sign(alice, "heartbeat")
    assert (await registry.send(beat))[0] == 200
    before = await _snapshot(registry)
    registry.clock.advance(30)
    assert (await registry.send(beat))[0] == 403
    assert await _snapshot(registry) == before
    assert (await registry.get(f"/v1/agents/{alice.address}"))[1]["card"]["name"] == "v2"


async def test_staleWrites_refused401_nothingChanged(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    before = await _snapshot(registry)
    now = int(registry.clock())
    for timestamp in (now - 61, now + 61, 0):
        status, answer = await registry.send(registry.sign(alice, "heartbeat", timestamp=timestamp))
        assert (status, answer["code"]) == (401, "stale")
        status, answer = await registry.send(
            registry.sign(alice, "update", make_card(alice, name="x"), timestamp=timestamp)
        )
        assert status == 401
    assert await _snapshot(registry) == before
    assert (await registry.send(registry.sign(alice, "heartbeat", timestamp=now - 59)))[0] == 200


async def test_refusedRegister_leavesNonceUnused(registry: Registry) -> None:
    bob = identity("bob")
    write = registry.sign(bob, "update", make_card(bob))
    assert (await registry.send(write))[0] == 404  # bob is not registered yet
    assert await registry.service.store.nonce_count() == 0


async def test_unknownFields_refused422(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    before = await _snapshot(registry)
    body = registry.sign(alice, "update", make_card(alice)).model_dump(mode="json")
    for bad in ({**body, "extra": 1}, {**body, "card": {**body["card"], "rating": 5}}):
        status, answer = await registry.send(bad)
        assert (status, answer["code"]) == (422, "invalid_body"), answer
    offer = {**body["card"]["offerings"][0], "discount": 1}
    status, _ = await registry.send({**body, "card": {**body["card"], "offerings": [offer]}})
    assert status == 422
    status, answer = await registry.get("/v1/search", colour="blue")
    assert (status, answer["code"]) == (422, "invalid_query")
    status, answer = await registry.get("/v1/events", since=1)
    assert status == 422
    assert await _snapshot(registry) == before


async def test_malformedBodies_refusedWithJsonErrors(registry: Registry) -> None:
    for raw in (b"{not json", b"\xff\xfe", b"[1, 2]", b"null"):
        response = await registry.client.post("/v1/agents", data=raw)
        assert response.status in (400, 422)
        assert set(await response.json()) == {"code", "message"}
    body = registry.sign(identity("a"), "register", make_card(identity("a"))).model_dump(mode="json")
    body["card"]["offerings"][0]["price_per_unit"] = "1000"  # money must be a JSON integer
    assert (await registry.send(body))[0] == 422
    body["card"]["offerings"][0]["price_per_unit"] = 1.5
    assert (await registry.send(body))[0] == 422


async def test_oversizedBody_refused413(registry: Registry) -> None:
    alice = identity("alice")
    body = registry.sign(alice, "register", make_card(alice)).model_dump(mode="json")
    body["card"]["name"] = "x" * 70_000
    status, answer = await registry.send(body)
    assert (status, answer["code"]) == (413, "body_too_large")
    assert (await registry.get("/v1/search"))[1]["results"] == []


async def test_wrongEndpointForAction_refused400(registry: Registry) -> None:
    alice, bob = identity("alice"), identity("bob")
    await registry.register(alice)
    beat = registry.sign(alice, "heartbeat").model_dump(mode="json")
    response = await registry.client.post(f"/v1/agents/{alice.address}/deregister", json=beat)
    assert (response.status, (await response.json())["code"]) == (400, "wrong_action")
    response = await registry.client.post(f"/v1/agents/{bob.address}/heartbeat", json=beat)
    assert (response.status, (await response.json())["code"]) == (403, "address_mismatch")
    assert (await registry.get(f"/v1/agents/{alice.address}"))[0] == 200


async def test_expiry_hidesThenPurgesEntries(registry: Registry) -> None:
    alice, bob = identity("alice"), identity("bob")
    await registry.register(alice)
    registry.clock.advance(60)
    await registry.register(bob)
    registry.clock.advance(61)  # alice is 121 s old, bob 61 s
    _, page = await registry.get("/v1/search")
    assert [r["card"]["address"] for r in page["results"]] == [bob.address]
    assert (await registry.get(f"/v1/resolve/{alice.address}"))[0] == 404
    assert (await registry.send(registry.sign(alice, "heartbeat")))[0] == 404
    assert await registry.service.sweep() == (1, 0)
    # An expired agent may register again.
    await registry.register(alice)
    assert (await registry.get("/v1/health"))[1]["agents"] == 2


async def test_sweep_dropsOnlyNoncesTooOldToReplay(registry: Registry) -> None:
    alice = identity("alice")
    await registry.register(alice)
    beat = registry.sign(alice, "heartbeat")
    await registry.send(beat)
    registry.clock.advance(100)
    await registry.send(registry.sign(alice, "heartbeat"))
    assert await registry.service.sweep() == (0, 0)
    registry.clock.advance(30)  # the first two nonces are now > 2 × skew old
    assert await registry.service.sweep() == (0, 2)
    assert (await registry.send(beat))[1]["code"] == "stale"


async def test_search_filtersAndRanking(registry: Registry) -> None:
    names = ["cheap", "mid-good", "mid-bad", "pricey", "validator"]
    ids = {n: identity(n) for n in names}
    price = {"cheap": 5, "mid-good": 10, "mid-bad": 10, "pricey": 50}
    for n in names[:4]:
        offers = [
            Offering(model_id="two-tower-v1", job_kind="inference", price_per_unit=price[n]),
            Offering(model_id="clf-v1", job_kind="training", price_per_unit=price[n] * 100),
        ]
        await registry.register(ids[n], make_card(ids[n], offerings=offers, name=n))
        registry.clock.advance(1)
    await registry.register(ids["validator"], make_card(ids["validator"], role="validator", offerings=[]))
    registry.reputation.set(owner_of(ids["mid-good"].address), _rep(3, 900))
    registry.reputation.set(owner_of(ids["mid-bad"].address), _rep(1, 100))
    registry.reputation.set(owner_of(ids["pricey"].address), _rep(9, 5000))
    await registry.service.refresh_reputation()

    async def order(**params: Any) -> list[str]:
        status, page = await registry.get("/v1/search", **params)
        assert status == 200, page
        return [r["card"]["name"] or r["card"]["role"] for r in page["results"]]

    assert await order(job_kind="inference") == ["cheap", "mid-good", "mid-bad", "pricey"]
    assert await order() == ["cheap", "mid-good", "mid-bad", "pricey", "validator"]
    assert await order(role="validator") == ["validator"]
    assert await order(job_kind="training", max_price=1000) == ["cheap", "mid-good", "mid-bad"]
    assert await order(model_id="clf-v1", max_price=999) == ["cheap"]
    assert await order(min_reputation=500) == ["mid-good", "pricey"]
    assert await order(model_id="nope") == []
    registry.clock.advance(10)
    await registry.send(registry.sign(ids["pricey"], "heartbeat"))
    assert await order(seen_within=5) == ["pricey"]
    # Equal price and reputation: the more recent heartbeat ranks first.
    registry.reputation.set(owner_of(ids["mid-bad"].address), _rep(3, 900))
    await registry.service.refresh_reputation()
    await registry.send(registry.sign(ids["mid-bad"], "heartbeat"))
    assert (await order(job_kind="inference"))[1:3] == ["mid-bad", "mid-good"]
    _, top = await registry.get("/v1/search", job_kind="inference")
    assert top["results"][3]["reputation"] == {"count": 9, "volume": 5000 * 10**18, "score": 5000}


def _rep(count: int, score: int) -> Any:
    from marketplace.registry import Reputation

    return Reputation(count=count, volume=score * 10**18, score=score)


async def test_search_paginates(registry: Registry) -> None:
    for i in range(7):
        who = identity(f"p{i}")
        offers = [Offering(model_id="m", job_kind="inference", price_per_unit=100 - i)]
        await registry.register(who, make_card(who, offerings=offers, name=f"p{i}"))
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        status, page = await registry.get("/v1/search", limit=3, offset=offset)
        assert status == 200
        seen += [r["card"]["name"] for r in page["results"]]
        offset = page["next_offset"]
    assert seen == [f"p{i}" for i in reversed(range(7))]
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"max_price": -5}, {"role": "Not a role!"}):
        status, answer = await registry.get("/v1/search", **bad)
        assert (status, answer["code"]) == (422, "invalid_query")
    response = await registry.client.get("/v1/search?role=seller&role=user")
    assert response.status == 400


async def test_bigPrices_exactBeyond64Bits(registry: Registry) -> None:
    who = identity("whale")
    huge = 2**200 + 1
    await registry.register(who, make_card(who, offerings=[Offering(model_id="m", job_kind="x", price_per_unit=huge)]))
    _, page = await registry.get("/v1/search", max_price=huge)
    assert page["results"][0]["best_price"] == huge
    assert (await registry.get("/v1/search", max_price=huge - 1))[1]["results"] == []


async def test_serviceEndpoints_healthOpenapiDashboardEvents(registry: Registry) -> None:
    status, body = await registry.get("/v1/health")
    registry_id = registry.service.registry_id
    assert registry_id.startswith("registry-")
    assert (status, body) == (
        200,
        {"status": "ok", "agents": 0, "schema_version": 2, "chain_events": False, "registry_id": registry_id},
    )
    status, spec = await registry.get("/openapi.json")
    assert status == 200
    assert spec["openapi"].startswith("3.1")
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    served = {(r.resource.canonical, r.method.lower()) for r in registry.client.app.router.routes() if r.resource}
    assert served - {("/static/{name}", "get"), ("/static/{name}", "head")} - {(p, "head") for p, _ in served} == (
        documented
    )
    assert (await registry.get("/v1/events"))[1] == {"events": []}
    page = await registry.client.get("/")
    assert page.status == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "agora" in await page.text()
    for name in ("dashboard.js", "dashboard.css"):
        assert (await registry.client.get(f"/static/{name}")).status == 200
    status, body = await registry.get("/static/../app.py")
    assert status == 404
    assert set(body) == {"code", "message"}
    status, body = await registry.get("/nowhere")
    assert (status, body["code"]) == (404, "not_found")
    response = await registry.client.delete("/v1/search")
    assert (response.status, (await response.json())["code"]) == (405, "method_not_allowed")


async def test_reputation_onlyForTheAgentItsOwnerVouchesFor(registry: Registry) -> None:
    owner = owner_of("shared-owner")
    honest, copycat = identity("honest"), identity("copycat")
    await registry.register(honest, make_card(honest, owner=owner))
    await registry.register(copycat, make_card(copycat, owner=owner))
    registry.reputation.set(owner, _rep(5, 9000))
    registry.reputation.vouched[owner.lower()] = honest.address
    await registry.service.refresh_reputation()
    _, page = await registry.get("/v1/search", min_reputation=1)
    assert [r["card"]["address"] for r in page["results"]] == [honest.address]
    _, entry = await registry.get(f"/v1/agents/{copycat.address}")
    assert entry["reputation"]["score"] == 0
