"""Accounts end to end over HTTP (issue 14 through issue 15's API): the admin's deposits,
a trade, then each side's balances to the cent; a withdrawal refused while its funds are
held and allowed after the cancel; a halt set over HTTP that the book stream shows and new
orders meet; the balance stream. The same venue as tests/service/test_accounts_e2e.py
(fees: maker 10 bps, taker 25 bps; USD at two decimals), so the same exact amounts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from http_client import auth, events
from service_harness import Exchange, running_exchange, service_settings
from test_accounts_e2e import BTC, VENUE_FILE

BOUND_S = 10.0


@pytest.fixture
async def venue(
    fresh_database_url: str, service_redis_url: str, tmp_path: Path
) -> AsyncIterator[Exchange]:
    path = tmp_path / "venue.json"
    path.write_bytes(orjson.dumps(VENUE_FILE))
    settings = service_settings(fresh_database_url, service_redis_url, instruments_file=path)
    async with running_exchange(settings, funding=None) as exchange:
        yield exchange


@pytest.fixture
async def http(venue: Exchange) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=venue.http_url, timeout=BOUND_S) as client:
        yield client


async def key(exchange: Exchange, user_id: str) -> dict[str, str]:
    assert exchange.keys is not None
    return auth(await exchange.keys.key_for(user_id))


def admin(exchange: Exchange) -> dict[str, str]:
    assert exchange.keys is not None
    return auth(exchange.keys.admin_key)


async def deposit(
    http: httpx.AsyncClient, exchange: Exchange, user_id: str, asset: str, amount: Any, tid: str
) -> dict[str, Any]:
    answer = await http.post(
        "/admin/deposits",
        json={"userId": user_id, "asset": asset, "amount": amount, "transferId": tid},
        headers=admin(exchange),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def balances(
    http: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> list[tuple[str, str, str]]:
    answer = await http.get("/balances", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return [(b["asset"], b["available"], b["held"]) for b in answer.json()["balances"]]


async def place(
    http: httpx.AsyncClient, headers: dict[str, str], side: str, price: str, quantity: str
) -> dict[str, Any]:
    answer = await http.post(
        "/orders",
        json={
            "asset": BTC,
            "type": side,
            "price": price,
            "quantity": quantity,
            "waitForOutcome": True,
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_deposit_trade_then_exact_balances_fees_and_ledger_on_both_sides(
    venue: Exchange, http: httpx.AsyncClient
) -> None:
    first = await deposit(http, venue, "alice", "BTC", "2", "dep-a")
    assert (first["status"], first["amount"], first["duplicate"], first["reason"]) == (
        "COMPLETED",
        "2.00000000",
        False,
        "",
    )
    await deposit(http, venue, "bob", "USD", 10000, "dep-b")  # a JSON number, kept exact
    retry = await deposit(http, venue, "bob", "USD", "10000.00", "dep-b")
    assert (retry["status"], retry["duplicate"]) == ("COMPLETED", True)

    alice, bob = await key(venue, "alice"), await key(venue, "bob")
    maker = await place(http, alice, "SELL", "3333", "1.00")
    assert maker["status"] == "OPEN"
    taker = await place(http, bob, "BUY", "3400", "0.50")
    assert taker["status"] == "FILLED"
    # 0.5 BTC at 3333 = 1666.50 USD; bob (taker, 25 bps) pays 4.17, alice (maker) 1.67.
    position = taker["position"]
    assert await balances(http, bob, minPosition=position) == [
        ("BTC", "0.50000000", "0.00000000"),
        ("USD", "8329.33", "0.00"),
    ]
    assert await balances(http, alice, minPosition=position) == [
        ("BTC", "1.00000000", "0.50000000"),
        ("USD", "1664.83", "0.00"),
    ]
    # An admin reads any account (the fee account here); a trade key only its own.
    assert await balances(http, admin(venue), userId="venue-fees") == [("USD", "5.84", "0.00")]
    other = await http.get("/balances", params={"userId": "alice"}, headers=bob)
    assert (other.status_code, other.json()["error"]["code"]) == (403, "PERMISSION_DENIED")

    # Each party sees its own fee on the trade; anyone else none.
    def fees(answer: httpx.Response) -> list[tuple[Any, Any]]:
        return [(t["fee"], t["feeAsset"]) for t in answer.json()["trades"]]

    assert fees(await http.get(f"/trades/{BTC}", headers=bob)) == [("4.17", "USD")]
    assert fees(await http.get(f"/trades/{BTC}", headers=alice)) == [("1.67", "USD")]
    assert fees(await http.get(f"/trades/{BTC}", headers=admin(venue))) == [(None, None)]

    # Bob's ledger, two entries a page, most recent first.
    entries: list[dict[str, Any]] = []
    token = ""
    while True:
        page = await http.get("/ledger", params={"pageSize": "2", "pageToken": token}, headers=bob)
        assert page.status_code == 200, page.text
        assert len(page.json()["entries"]) <= 2
        entries += page.json()["entries"]
        token = page.json()["nextPageToken"]
        if not token:
            break
    assert [(e["cause"], e["asset"], e["availableChange"], e["heldChange"]) for e in entries] == [
        ("TRADE", "BTC", "0.50000000", "0.00000000"),
        ("FEE", "USD", "-4.17", "0.00"),
        ("TRADE", "USD", "38.00", "-1704.50"),
        ("HOLD", "USD", "-1704.50", "1704.50"),
        ("DEPOSIT", "USD", "10000.00", "0.00"),
    ]
    only_btc = await http.get("/ledger", params={"asset": "BTC"}, headers=bob)
    assert [e["cause"] for e in only_btc.json()["entries"]] == ["TRADE"]
    unknown = await http.get("/ledger", params={"asset": "XRP"}, headers=bob)
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (400, "asset")
    bad_token = await http.get("/ledger", params={"pageToken": "nope"}, headers=bob)
    assert (bad_token.status_code, bad_token.json()["error"]["field"]) == (400, "pageToken")

    instruments = (await http.get("/instruments", headers=bob)).json()["instruments"]
    assert [
        (i["symbol"], i["status"], i["baseAsset"], i["quoteAsset"], i["makerFeeBps"])
        for i in instruments
    ] == [(BTC, "TRADING", "BTC", "USD", 10)]


async def test_a_withdrawal_is_refused_while_held_and_allowed_after_the_cancel(
    venue: Exchange, http: httpx.AsyncClient
) -> None:
    await deposit(http, venue, "carol", "USD", "1000", "dep-c")
    carol = await key(venue, "carol")
    order = await place(http, carol, "BUY", "100", "5.00")
    assert await balances(http, carol) == [("USD", "495.00", "505.00")]

    async def withdraw(amount: str, transfer_id: str, **more: str) -> httpx.Response:
        return await http.post(
            "/withdrawals",
            json={"asset": "USD", "amount": amount, "transferId": transfer_id, **more},
            headers=carol,
        )

    refused = await withdraw("600", "w-1")
    assert refused.status_code == 200, refused.text
    assert (refused.json()["status"], refused.json()["reason"]) == (
        "REJECTED",
        "INSUFFICIENT_FUNDS",
    )
    again = await withdraw("600", "w-1")
    assert (again.json()["reason"], again.json()["duplicate"]) == ("INSUFFICIENT_FUNDS", True)
    reused = await withdraw("601", "w-1")
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "ALREADY_EXISTS")

    cancelled = await http.delete(
        f"/orders/{order['orderId']}", params={"waitForOutcome": "true"}, headers=carol
    )
    assert cancelled.json()["status"] == "CANCELLED"
    done = await withdraw("600", "w-2")
    assert done.json()["status"] == "COMPLETED"
    assert await balances(http, carol, minPosition=done.json()["position"]) == [
        ("USD", "400.00", "0.00")
    ]

    # Only from its own account; fields refused by name; the admin's calls need the scope.
    not_hers = await withdraw("1", "w-3", userId="alice")
    assert (not_hers.status_code, not_hers.json()["error"]["code"]) == (403, "PERMISSION_DENIED")
    for body, field, reason in [
        ({"asset": "USD", "amount": "0.001", "transferId": "w-4"}, "amount", "OFF_UNIT_GRID"),
        ({"asset": "XRP", "amount": "1", "transferId": "w-4"}, "asset", "UNKNOWN_ASSET"),
        ({"asset": "USD", "amount": "-1", "transferId": "w-4"}, "amount", "NOT_POSITIVE"),
        ({"asset": "USD", "amount": "1"}, "transferId", "REQUIRED"),
        ({"asset": "USD", "amount": "1", "transferId": ""}, "transferId", "REQUIRED"),
    ]:
        answer = await http.post("/withdrawals", json=body, headers=carol)
        assert answer.status_code == 400, (body, answer.text)
        assert (answer.json()["error"]["field"], answer.json()["error"]["reason"]) == (
            field,
            reason,
        ), body
    for path in ("/admin/deposits", "/admin/withdrawals"):
        body = {"userId": "carol", "asset": "USD", "amount": "1", "transferId": "x"}
        forbidden = await http.post(path, json=body, headers=carol)
        assert forbidden.status_code == 403, path
        assert (await http.post(path, json=body)).status_code == 401, path
    taken = await http.post(
        "/admin/withdrawals",
        json={"userId": "carol", "asset": "USD", "amount": "400", "transferId": "aw-1"},
        headers=admin(venue),
    )
    assert taken.json()["status"] == "COMPLETED"
    assert await balances(http, carol, minPosition=taken.json()["position"]) == [
        ("USD", "0.00", "0.00")
    ]


async def test_a_halt_over_http_shows_on_the_book_stream_and_rejects_new_orders(
    venue: Exchange, http: httpx.AsyncClient
) -> None:
    await deposit(http, venue, "alice", "BTC", "1", "dep-a")
    alice = await key(venue, "alice")
    resting = await place(http, alice, "SELL", "10", "0.50")

    async def set_status(status: str, symbol: str = BTC) -> httpx.Response:
        return await http.post(
            f"/admin/instruments/{symbol}/status", json={"status": status}, headers=admin(venue)
        )

    async with http.stream("GET", f"/streams/book/{BTC}", headers=alice) as stream:
        book = events(stream)
        async with asyncio.timeout(BOUND_S):
            snapshot = await anext(book)
        assert (snapshot.event, snapshot.data["status"]) == ("snapshot", "TRADING")

        halted = await set_status("HALTED")
        assert halted.status_code == 200, halted.text
        assert (halted.json()["instrument"], halted.json()["status"]) == (BTC, "HALTED")
        async with asyncio.timeout(BOUND_S):
            change = await anext(book)
        assert (change.event, change.data["status"]) == ("status", "HALTED")
        assert change.data["sequence"] == snapshot.data["sequence"]

        instruments = (await http.get("/instruments", headers=alice)).json()["instruments"]
        assert [(i["symbol"], i["status"]) for i in instruments] == [(BTC, "HALTED")]
        new = await place(http, alice, "SELL", "11", "0.10")
        assert (new["status"], new["reason"]) == ("REJECTED", "INSTRUMENT_HALTED")

        resumed = await set_status("TRADING")
        assert resumed.json()["status"] == "TRADING"
        async with asyncio.timeout(BOUND_S):
            change = await anext(book)
        assert (change.event, change.data["status"]) == ("status", "TRADING")
    assert (await place(http, alice, "SELL", "11", "0.10"))["status"] == "OPEN"
    assert resting["status"] == "OPEN"

    bad = await set_status("FROZEN")
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "status")
    unknown = await set_status("HALTED", "NOPE-USD")
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (400, "instrument")
    not_admin = await http.post(
        f"/admin/instruments/{BTC}/status", json={"status": "HALTED"}, headers=alice
    )
    assert not_admin.status_code == 403


async def test_the_balance_stream_shows_the_snapshot_then_each_change(
    venue: Exchange, http: httpx.AsyncClient
) -> None:
    await deposit(http, venue, "dave", "USD", "5", "dep-d0")
    dave = await key(venue, "dave")
    async with http.stream("GET", "/streams/balances", headers=dave) as stream:
        assert stream.status_code == 200
        feed = events(stream)
        async with asyncio.timeout(BOUND_S):
            snapshot = await anext(feed)
        assert snapshot.event == "snapshot"
        assert [(b["asset"], b["available"], b["held"]) for b in snapshot.data["balances"]] == [
            ("USD", "5.00", "0.00")
        ]
        await deposit(http, venue, "dave", "BTC", "0.25", "dep-d1")
        async with asyncio.timeout(BOUND_S):
            change = await anext(feed)
        assert change.event == "balance"
        assert (change.data["asset"], change.data["available"], change.data["held"]) == (
            "BTC",
            "0.25000000",
            "0.00000000",
        )
    other = await http.get("/streams/balances", params={"userId": "alice"}, headers=dave)
    assert other.status_code == 403


async def test_with_accounts_off_the_money_calls_are_409(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url, accounts_enabled=False)
    async with (
        running_exchange(settings, funding=None) as exchange,
        httpx.AsyncClient(base_url=exchange.http_url, timeout=BOUND_S) as http,
    ):
        kim = await key(exchange, "kim")
        transfer = {"userId": "kim", "asset": "USD", "amount": "1", "transferId": "t-1"}
        answers = [
            await http.get("/balances", headers=kim),
            await http.get("/ledger", headers=kim),
            await http.get("/streams/balances", headers=kim),
            await http.post("/withdrawals", json=transfer, headers=kim),
            await http.post("/admin/deposits", json=transfer, headers=admin(exchange)),
        ]
        assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
            (409, "FAILED_PRECONDITION")
        ] * len(answers)
        # Orders trade unfunded, and the instruments show no assets or fees.
        instruments = (await http.get("/instruments", headers=kim)).json()["instruments"]
        assert {(i["status"], i["makerFeeBps"]) for i in instruments} == {("TRADING", 0)}
