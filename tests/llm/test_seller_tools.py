"""The seller's LangChain tools on a real seller role and the real contracts: its models and prices, a price change
within the owner's bounds (refused outside them with nothing changed on chain or in its store), earnings, channels,
claims that pay it on chain, royalties; and a scripted fake chat model running the seller through its toolkit."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agents.base import AgoraAgent
from agents.capabilities.catalogue import CataloguePricing, ModelCatalogue
from agents.capabilities.kit import composed
from agents.capabilities.payment import ChannelPayee
from agents.roles import seller as seller_role
from agents.tools import RoleToolkit, toolkit_for
from agents.tools.driver import drive
from agents.tools.seller import PriceBounds
from marketplace.chain import ModelRegistryClient, TokenClient
from protocols.negotiation import JobSpec
from tests.llm.test_tools import _call, _model, _tool_results
from tests.roles.world import FLOOR, PRICE, World

pytestmark = pytest.mark.chain

BOUNDS = PriceBounds(max_markup=4)
CEILING = FLOOR * BOUNDS.max_markup


def _catalogue(seller: AgoraAgent) -> ModelCatalogue:
    return next(c for c in composed(seller) if isinstance(c, ModelCatalogue))


async def _paid_seller(economy: World, calls: int = 2) -> tuple[AgoraAgent, RoleToolkit, int]:
    """A seller serving the classifier, paid `calls` calls by a buyer double; its toolkit and the price paid."""
    seller = await economy.seller_with_model(seller_role)
    buyer = await economy.buyer("buyer")
    channel, price = await buyer.open_channel(seller)
    for i in range(calls):
        await buyer.paid_call(seller, channel, f"job-{i}", price)
    return seller, toolkit_for(seller, bounds=BOUNDS), price


async def _run(toolkit: RoleToolkit, name: str, **args: Any) -> str:
    tool = next(t for t in toolkit.tools() if t.name == name)
    return str(await tool.ainvoke(args))


async def test_toolkitFor_sellerRoleHasSellerAndSponsorTools(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)

    names = [t.name for t in toolkit_for(seller).tools()]

    assert names == [
        "list_models", "set_price", "check_earnings", "list_payment_channels", "claim_payments", "show_royalties",
        "sponsored_jobs", "reclaim_federated_budget",
    ]  # fmt: skip


async def test_sellerTools_listEarnClaimAgainstTheChain(economy: World) -> None:
    seller, toolkit, price = await _paid_seller(economy)
    token = TokenClient(economy.conn)
    before = await token.balance_of(seller.keys.eth_address)

    listed = await _run(toolkit, "list_models")
    earnings = await _run(toolkit, "check_earnings")
    channels = await _run(toolkit, "list_payment_channels")
    claimed = await _run(toolkit, "claim_payments")
    again = await _run(toolkit, "claim_payments")
    royalties = await _run(toolkit, "show_royalties")
    after = await _run(toolkit, "check_earnings")

    assert listed.startswith("clf-test (classifier, token ")
    assert f"{PRICE} per call, reserve {FLOOR}, ceiling {CEILING}" in listed
    assert f"buyers paid {2 * price} by voucher over 1 channel(s): 0 claimed, {2 * price} unclaimed" in earnings
    assert channels.startswith("channel ")
    assert f"paid {2 * price}, claimed 0" in channels
    assert claimed == f"claimed {2 * price} from 1 channel(s); royalties were split on chain"
    assert await token.balance_of(seller.keys.eth_address) - before == 2 * price  # no parent: all of it
    assert again == "nothing to claim (0 unclaimed)"
    assert royalties == "clf-test pays no royalties"
    assert f"{2 * price} claimed, 0 unclaimed" in after
    assert [(e.tool, e.ok) for e in toolkit.transcript.entries()] == [
        ("list_models", True), ("check_earnings", True), ("list_payment_channels", True), ("claim_payments", True),
        ("claim_payments", True), ("show_royalties", True), ("check_earnings", True),
    ]  # fmt: skip


async def test_setPrice_withinBoundsChangesQuotesAndChainPriceHint(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    toolkit = toolkit_for(seller, bounds=BOUNDS)
    entry = _catalogue(seller).get("clf-test")
    assert entry is not None

    result = await _run(toolkit, "set_price", model_id="clf-test", price_per_call=CEILING)

    assert result == f"clf-test: {PRICE} -> {CEILING} per call (quotes use it now)"
    assert (await ModelRegistryClient(economy.conn).model_of(entry.chain_id)).price_per_call == CEILING
    assert _catalogue(seller).get("clf-test").price_per_call == CEILING  # type: ignore[union-attr]
    quote = await CataloguePricing(_catalogue(seller)).quote(JobSpec(kind="inference", model_id="clf-test", units=2))
    assert quote == (2 * CEILING, 2 * FLOOR)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"model_id": "clf-test", "price_per_call": FLOOR - 1}, "out_of_bounds"),
        ({"model_id": "clf-test", "price_per_call": CEILING + 1}, "out_of_bounds"),
        ({"model_id": "no-such-model", "price_per_call": PRICE}, "not_found"),
        ({"model_id": "clf-test", "price_per_call": -5}, "invalid_arguments"),
        ({"model_id": "clf-test", "price_per_call": "cheap"}, "invalid_arguments"),
        ({"model_id": "clf-test"}, "invalid_arguments"),
        ({"model_id": "clf-test", "price_per_call": PRICE, "pay_to": "0x" + "de" * 20}, "invalid_arguments"),
    ],
)
async def test_setPrice_malformedOrOutOfBoundsTypedErrorNothingChanged(
    economy: World, args: dict[str, Any], code: str
) -> None:
    seller = await economy.seller_with_model(seller_role)
    toolkit = toolkit_for(seller, bounds=BOUNDS)
    entry = _catalogue(seller).get("clf-test")
    assert entry is not None
    registry = ModelRegistryClient(economy.conn)
    block = await economy.conn.w3.eth.block_number

    result = await _run(toolkit, "set_price", **args)

    assert result.startswith(f"error[{code}]: ")
    assert "\n" not in result
    assert _catalogue(seller).get("clf-test") == entry
    assert (await registry.model_of(entry.chain_id)).price_per_call == PRICE
    assert await economy.conn.w3.eth.block_number == block  # no transaction at all
    (logged,) = toolkit.transcript.entries()
    assert (logged.tool, logged.ok, logged.result) == ("set_price", False, result)


async def test_drive_fakeModelRunsTheSellerThroughItsTools(economy: World) -> None:
    seller, toolkit, price = await _paid_seller(economy, calls=3)
    token = TokenClient(economy.conn)
    before = await token.balance_of(seller.keys.eth_address)
    model = _model(
        _call("list_models", "s1"),
        _call("set_price", "s2", model_id="clf-test", price_per_call=100 * PRICE),  # beyond the owner's bounds
        _call("set_price", "s3", model_id="clf-test", price_per_call=CEILING),
        _call("check_earnings", "s4"),
        _call("claim_payments", "s5"),
        AIMessage(content="Raised clf-test to the ceiling and claimed what buyers paid."),
    )

    result = await drive(model, toolkit.tools(), "Price clf-test as high as allowed and collect payments.")

    assert result.answer == "Raised clf-test to the ceiling and claimed what buyers paid."
    listed, refused, repriced, earnings, claimed = _tool_results(result.messages)
    assert "clf-test" in listed
    assert refused.startswith("error[out_of_bounds]: price")
    assert repriced == f"clf-test: {PRICE} -> {CEILING} per call (quotes use it now)"
    assert f"{3 * price} unclaimed" in earnings
    assert claimed.startswith(f"claimed {3 * price} from 1 channel(s)")
    assert await token.balance_of(seller.keys.eth_address) - before == 3 * price
    entry = _catalogue(seller).get("clf-test")
    assert entry is not None
    assert (await ModelRegistryClient(economy.conn).model_of(entry.chain_id)).price_per_call == CEILING
    report = toolkit.report()
    assert [(c.tool, c.ok) for c in report.calls] == [
        ("list_models", True), ("set_price", False), ("set_price", True), ("check_earnings", True),
        ("claim_payments", True),
    ]  # fmt: skip
    key_hex = seller.keys.account.key.hex().removeprefix("0x")
    assert all(key_hex not in str(m.content) for m in result.messages)
    assert key_hex not in report.model_dump_json()


async def test_claimPayments_withArgumentsItDoesNotTakeRefusedNothingClaimed(economy: World) -> None:
    seller, toolkit, price = await _paid_seller(economy, calls=1)
    block = await economy.conn.w3.eth.block_number

    result = await _run(toolkit, "claim_payments", to="0x000000000000000000000000000000000000dEaD")

    assert result == "error[invalid_arguments]: to: Extra inputs are not permitted"
    assert await economy.conn.w3.eth.block_number == block
    payee = next(c for c in composed(seller) if isinstance(c, ChannelPayee))
    assert payee.unclaimed() == price
