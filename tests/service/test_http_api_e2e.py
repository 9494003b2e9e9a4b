"""The HTTP API end to end, over a real HTTP connection to a running exchange: the seed's
exact calls, a cross with a partial fill, cancel, amend, the refusals with their statuses,
and the live feeds as server-sent events."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from http_client import READ, auth, events, http_key, issue_key
from prometheus_client import REGISTRY
from service_harness import Exchange, running_exchange, service_settings
from service_helpers import BTC, BUY, SELL, limit

BOUND_S = 10.0
SEED_ORDER = {
    "userId": "alice",
    "asset": "BTC-USD",
    "type": "BUY",
    "price": 45000.00,
    "quantity": 1.5,
}
SEED_FIELDS = {
    "orderId",
    "userId",
    "asset",
    "type",
    "price",
    "quantity",
    "status",
    "createdAt",
    "updatedAt",
}


@pytest.fixture
async def http(exchange: Exchange) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=exchange.http_url, timeout=BOUND_S) as client:
        yield client


def _http_count(operation: str, status: str) -> float:
    labels = {"operation": operation, "status": status}
    return REGISTRY.get_sample_value("exchange_http_requests_total", labels) or 0.0


async def test_the_seeds_post_and_get(exchange: Exchange, http: httpx.AsyncClient) -> None:
    key = await http_key(exchange, "alice")
    placed_before = _http_count("placeOrder", "201")
    placed = await http.post("/orders", json=SEED_ORDER, headers=auth(key))
    assert placed.status_code == 201, placed.text
    assert _http_count("placeOrder", "201") == placed_before + 1
    order = placed.json()
    assert set(order) >= SEED_FIELDS
    assert (order["userId"], order["asset"], order["type"], order["status"]) == (
        "alice",
        "BTC-USD",
        "BUY",
        "PENDING",
    )
    # Decimals answered as strings at the instrument's scale (tick 0.01, lot 0.0001).
    assert (order["price"], order["quantity"]) == ("45000.00", "1.5000")
    assert (order["orderType"], order["timeInForce"]) == ("LIMIT", "GTC")
    assert order["createdAt"].endswith("Z") and order["updatedAt"].endswith("Z")
    assert placed.headers["location"] == f"/orders/{order['orderId']}"

    got = await http.get(
        f"/orders/{order['orderId']}",
        params={"minPosition": order["position"]},
        headers=auth(key),
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert set(body) >= SEED_FIELDS
    assert (body["orderId"], body["price"], body["quantity"]) == (
        order["orderId"],
        "45000.00",
        "1.5000",
    )
    assert body["status"] in ("PENDING", "OPEN")


async def test_decimal_strings_are_taken_as_written(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    key = await http_key(exchange, "alice")
    body = {**SEED_ORDER, "price": "45000.1", "quantity": "0.25"}
    placed = await http.post("/orders", json=body, headers=auth(key))
    assert placed.status_code == 201, placed.text
    assert (placed.json()["price"], placed.json()["quantity"]) == ("45000.10", "0.2500")


async def test_a_cross_with_a_partial_fill(exchange: Exchange, http: httpx.AsyncClient) -> None:
    alice, bob = await http_key(exchange, "alice"), await http_key(exchange, "bob")
    sell = await http.post(
        "/orders",
        json={
            "asset": BTC,
            "type": "SELL",
            "price": "45000.00",
            "quantity": "1.5",
            "waitForOutcome": True,
        },
        headers=auth(alice),
    )
    assert sell.status_code == 201 and sell.json()["status"] == "OPEN", sell.text
    buy = await http.post(
        "/orders",
        json={"asset": BTC, "type": "BUY", "price": 45010, "quantity": 1, "waitForOutcome": True},
        headers=auth(bob),
    )
    assert buy.status_code == 201, buy.text
    taker = buy.json()
    assert (taker["status"], taker["filledQuantity"], taker["averagePrice"]) == (
        "FILLED",
        "1.0000",
        "45000.00",
    )
    again = await http.get(
        f"/orders/{taker['orderId']}", params={"minPosition": taker["position"]}, headers=auth(bob)
    )
    assert again.json()["averagePrice"] == taker["averagePrice"]
    maker = await http.get(
        f"/orders/{sell.json()['orderId']}",
        params={"minPosition": taker["position"]},
        headers=auth(alice),
    )
    assert (maker.json()["status"], maker.json()["filledQuantity"]) == (
        "PARTIALLY_FILLED",
        "1.0000",
    )
    book = await http.get(
        f"/books/{BTC}", params={"minPosition": taker["position"]}, headers=auth(bob)
    )
    assert book.json()["asks"] == [{"price": "45000.00", "quantity": "0.5000", "orderCount": 1}]
    assert (book.json()["bids"], book.json()["lastPrice"]) == ([], "45000.00")
    trades = await http.get(
        f"/trades/{BTC}", params={"minPosition": taker["position"]}, headers=auth(bob)
    )
    [trade] = trades.json()["trades"]
    assert (trade["price"], trade["quantity"], trade["takerSide"]) == ("45000.00", "1.0000", "BUY")
    assert (trade["makerOrderId"], trade["takerOrderId"]) == (
        sell.json()["orderId"],
        taker["orderId"],
    )
    mine = await http.get("/orders", params={"minPosition": taker["position"]}, headers=auth(alice))
    assert [o["orderId"] for o in mine.json()["orders"]] == [sell.json()["orderId"]]


async def test_cancel_amend_and_a_closed_order(exchange: Exchange, http: httpx.AsyncClient) -> None:
    key = await http_key(exchange, "carol")
    placed = await http.post(
        "/orders",
        json={
            "asset": BTC,
            "type": "BUY",
            "price": "100.00",
            "quantity": "2",
            "waitForOutcome": True,
        },
        headers=auth(key),
    )
    order_id = placed.json()["orderId"]
    amended = await http.patch(
        f"/orders/{order_id}",
        json={"price": "101.00", "quantity": 1.5, "waitForOutcome": True},
        headers=auth(key),
    )
    assert amended.status_code == 200, amended.text
    assert (amended.json()["price"], amended.json()["quantity"]) == ("101.00", "1.5000")
    assert amended.json()["rejectionReason"] == ""
    cancelled = await http.delete(
        f"/orders/{order_id}", params={"waitForOutcome": "true"}, headers=auth(key)
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    again = await http.delete(f"/orders/{order_id}", headers=auth(key))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "FAILED_PRECONDITION"
    amend_closed = await http.patch(
        f"/orders/{order_id}", json={"price": "1.00"}, headers=auth(key)
    )
    assert amend_closed.status_code == 409


async def test_refusals_and_their_statuses(exchange: Exchange, http: httpx.AsyncClient) -> None:
    alice = await http_key(exchange, "alice")
    bob = await http_key(exchange, "bob")
    reader = await issue_key(exchange, "alice", READ)

    no_key = await http.post("/orders", json=SEED_ORDER)
    assert no_key.status_code == 401
    assert no_key.headers["www-authenticate"] == "Bearer"
    assert no_key.json()["error"]["code"] == "UNAUTHENTICATED"
    bad_key = await http.get("/orders", headers=auth("exk_not-a-key"))
    assert bad_key.status_code == 401

    read_only = await http.post("/orders", json=SEED_ORDER, headers=auth(reader))
    assert read_only.status_code == 403
    someone_else = await http.post("/orders", json=SEED_ORDER, headers=auth(bob))
    assert someone_else.status_code == 403  # the body names alice; the key is bob's
    assert someone_else.json()["error"]["code"] == "PERMISSION_DENIED"

    cases = [
        ({**SEED_ORDER, "price": "45000.001"}, "price", "OFF_TICK_GRID"),
        ({**SEED_ORDER, "quantity": 0.00001}, "quantity", "OFF_LOT_GRID"),
        ({**SEED_ORDER, "quantity": "-1"}, "quantity", "NOT_POSITIVE"),
        ({**SEED_ORDER, "asset": "DOGE-EUR"}, "asset", "UNKNOWN_INSTRUMENT"),
        ({**SEED_ORDER, "type": "HOLD"}, "type", "MALFORMED"),
        ({k: v for k, v in SEED_ORDER.items() if k != "quantity"}, "quantity", "REQUIRED"),
        ({**SEED_ORDER, "orderType": "MARKET"}, "price", "NOT_ALLOWED"),
        ({**SEED_ORDER, "timeInForce": "GTD"}, "expireTime", "REQUIRED"),
    ]
    for body, field, reason in cases:
        refused = await http.post("/orders", json=body, headers=auth(alice))
        assert refused.status_code == 400, (body, refused.text)
        error = refused.json()["error"]
        assert (error["code"], error["field"], error["reason"]) == (
            "INVALID_ARGUMENT",
            field,
            reason,
        ), body
    not_json = await http.post("/orders", content=b"{", headers=auth(alice))
    assert (not_json.status_code, not_json.json()["error"]["field"]) == (400, "body")

    placed = await http.post("/orders", json=SEED_ORDER, headers=auth(alice))
    order_id = placed.json()["orderId"]
    for other in (
        http.get(f"/orders/{order_id}", headers=auth(bob)),
        http.delete(f"/orders/{order_id}", headers=auth(bob)),
        http.get("/orders/no-such-order", headers=auth(alice)),
    ):
        answer = await other
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "NOT_FOUND"


async def test_over_the_rate_limit_is_429_with_retry_after(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(
        fresh_database_url, service_redis_url, rate_limit_per_s=0.5, rate_limit_burst=1
    )
    async with running_exchange(settings) as exchange:
        key = await http_key(exchange, "alice")
        async with httpx.AsyncClient(base_url=exchange.http_url, timeout=BOUND_S) as http:
            first = await http.post("/orders", json=SEED_ORDER, headers=auth(key))
            assert first.status_code == 201
            second = await http.post("/orders", json=SEED_ORDER, headers=auth(key))
            assert second.status_code == 429
            assert second.headers["retry-after"] == "2"
            assert second.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
            # Reads are not charged.
            assert (await http.get("/orders", headers=auth(key))).status_code == 200


async def test_sse_delivers_trades_and_book_deltas(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    key = await http_key(exchange, "kim")
    async with (
        http.stream("GET", f"/streams/book/{BTC}", headers=auth(key)) as book_stream,
        http.stream("GET", f"/streams/trades/{BTC}", headers=auth(key)) as trade_stream,
    ):
        assert book_stream.status_code == 200
        assert book_stream.headers["content-type"].startswith("text/event-stream")
        book_events = events(book_stream)
        trade_events = events(trade_stream)
        async with asyncio.timeout(BOUND_S):
            snapshot = await anext(book_events)
        assert snapshot.event == "snapshot"
        assert (snapshot.data["bids"], snapshot.data["asks"]) == ([], [])
        sequence = snapshot.data["sequence"]
        assert snapshot.id == str(sequence)

        maker = await exchange.commands.PlaceOrder(limit("maker", SELL, "100.00", "2"))
        await exchange.commands.PlaceOrder(limit("taker", BUY, "100.00", "0.5"))
        async with asyncio.timeout(BOUND_S):
            trade = await anext(trade_events)
            first = await anext(book_events)
            second = await anext(book_events)
        assert trade.event == "trade"
        assert (trade.data["price"], trade.data["quantity"]) == ("100.00", "0.5000")
        assert trade.data["makerOrderId"] == maker.order.order_id
        assert trade.id == trade.data["position"]
        # Deltas chained by sequence: the ask appears, then the fill shrinks it.
        assert (first.event, first.data["sequence"], first.id) == (
            "update",
            sequence + 1,
            str(sequence + 1),
        )
        assert first.data["changes"] == [
            {"side": "SELL", "price": "100.00", "quantity": "2.0000", "orderCount": 1}
        ]
        assert (second.event, second.data["sequence"]) == ("update", sequence + 2)
        assert second.data["changes"] == [
            {"side": "SELL", "price": "100.00", "quantity": "1.5000", "orderCount": 1}
        ]


async def test_sse_order_updates_are_the_keys_own(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    key = await http_key(exchange, "bidder")
    async with http.stream("GET", "/streams/orders", headers=auth(key)) as stream:
        assert stream.status_code == 200
        updates = events(stream)
        await exchange.commands.PlaceOrder(limit("alice", BUY, "99.00", "1"))  # not bidder's
        placed = await exchange.commands.PlaceOrder(limit("bidder", BUY, "98.00", "1"))
        async with asyncio.timeout(BOUND_S):
            update = await anext(updates)
        assert update.event == "order"
        assert update.data["order"]["orderId"] == placed.order.order_id
        assert update.data["order"]["userId"] == "bidder"


async def test_a_stream_is_refused_before_it_starts(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    key = await http_key(exchange, "kim")
    unknown = await http.get("/streams/book/NOPE", headers=auth(key))
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (400, "instrument")
    assert (await http.get(f"/streams/trades/{BTC}")).status_code == 401
    bad_resume = await http.get(
        f"/streams/trades/{BTC}", params={"afterPosition": "yesterday"}, headers=auth(key)
    )
    assert (bad_resume.status_code, bad_resume.json()["error"]["field"]) == (400, "afterPosition")


async def test_a_retry_with_the_same_client_order_id_is_the_same_order(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    key = await http_key(exchange, "alice")
    body = {**SEED_ORDER, "clientOrderId": "seed-1"}
    first = await http.post("/orders", json=body, headers=auth(key))
    retry = await http.post("/orders", json=body, headers=auth(key))
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["orderId"] == first.json()["orderId"]
    assert (retry.json()["duplicate"], retry.json()["clientOrderId"]) == (True, "seed-1")
    other = await http.post("/orders", json={**body, "price": "44000.00"}, headers=auth(key))
    assert (other.status_code, other.json()["error"]["code"]) == (409, "ALREADY_EXISTS")


async def test_cancel_all_is_the_kill_switch(exchange: Exchange, http: httpx.AsyncClient) -> None:
    key = await http_key(exchange, "carol")
    for price in ("10.00", "11.00"):
        body = {
            "asset": BTC,
            "type": "BUY",
            "price": price,
            "quantity": "1",
            "waitForOutcome": True,
        }
        assert (await http.post("/orders", json=body, headers=auth(key))).status_code == 201
    cancelled = await http.delete("/orders", params={"waitForOutcome": "true"}, headers=auth(key))
    assert cancelled.status_code == 200, cancelled.text
    assert sorted(o["price"] for o in cancelled.json()["cancelledOrders"]) == ["10.00", "11.00"]
    assert {o["status"] for o in cancelled.json()["cancelledOrders"]} == {"CANCELLED"}


async def test_public_market_data_needs_no_key_but_orders_do(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url, public_market_data=True)
    async with (
        running_exchange(settings) as exchange,
        httpx.AsyncClient(base_url=exchange.http_url, timeout=BOUND_S) as http,
    ):
        for path in ("/instruments", f"/books/{BTC}", f"/trades/{BTC}"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/orders")).status_code == 401
        async with http.stream("GET", f"/streams/book/{BTC}") as stream:
            assert stream.status_code == 200
            snapshot = await anext(events(stream))
            assert snapshot.event == "snapshot"


async def test_a_key_holds_at_most_its_streams(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url, max_streams_per_key=1)
    async with (
        running_exchange(settings) as exchange,
        httpx.AsyncClient(base_url=exchange.http_url, timeout=BOUND_S) as http,
    ):
        key = await http_key(exchange, "kim")
        async with http.stream("GET", f"/streams/book/{BTC}", headers=auth(key)) as first:
            assert first.status_code == 200
            await anext(events(first))
            second = await http.get(f"/streams/trades/{BTC}", headers=auth(key))
            assert (second.status_code, second.json()["error"]["code"]) == (
                429,
                "RESOURCE_EXHAUSTED",
            )


async def test_an_order_just_placed_is_never_not_found(
    fresh_database_url: str, service_redis_url: str
) -> None:
    """A GET right after the POST, without minPosition, waits for the views to hold the
    order rather than answer 404: here the view builders are stopped, so it ends in 504
    (the views did not get there), while an unknown order, or another account's, is 404."""
    settings = service_settings(fresh_database_url, service_redis_url, query_wait_default_s=0.2)
    async with (
        running_exchange(settings) as exchange,
        httpx.AsyncClient(base_url=exchange.http_url, timeout=BOUND_S) as http,
    ):
        alice, bob = await http_key(exchange, "alice"), await http_key(exchange, "bob")
        await exchange.app.projections.stop()  # the views stay where they are
        placed = await http.post("/orders", json=SEED_ORDER, headers=auth(alice))
        order_id = placed.json()["orderId"]
        waited = await http.get(f"/orders/{order_id}", headers=auth(alice))
        assert (waited.status_code, waited.json()["error"]["code"]) == (504, "DEADLINE_EXCEEDED")
        assert (await http.get(f"/orders/{order_id}", headers=auth(bob))).status_code == 404
        assert (await http.get("/orders/never-placed", headers=auth(alice))).status_code == 404


async def test_a_taken_http_port_fails_the_start_naming_it(
    fresh_database_url: str, service_redis_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = service_settings(fresh_database_url, service_redis_url, http_port=port)
        with pytest.raises(RuntimeError, match=rf"cannot listen on 127.0.0.1:{port} \(HTTP_PORT\)"):
            async with running_exchange(settings):
                pass
