"""Poison input is refused at the door, through real gRPC: each finding of issue #11.

Every refusal is INVALID_ARGUMENT (or the status named) with a field and reason code and a
short message, nothing is appended for it, and the views keep serving the orders after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from service_harness import Exchange
from service_helpers import (
    BTC,
    BUY,
    SELL,
    field_violations,
    get_order,
    gtd,
    limit,
    place,
    place_settled,
)

from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import types_pb2 as types


async def _head(exchange: Exchange) -> object:
    store = exchange.app.event_store
    assert store is not None
    return await store.last_committed_position()


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def _assert_refused(
    exchange: Exchange, call: object, violation: tuple[str, str]
) -> grpc.aio.AioRpcError:
    head = await _head(exchange)
    error = await _refused(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field_violations(error) == [violation]
    assert len(error.details() or "") < 1024
    assert await _head(exchange) == head, "a refused call appended to the log"
    return error


async def _views_still_serve(exchange: Exchange) -> None:
    """A valid order after the poison one is placed, handled and visible."""
    order_id = await place_settled(exchange, limit("carol", BUY, "1.00", "1"))
    assert (await get_order(exchange, order_id)).status == types.ORDER_STATUS_OPEN


POISON_IDS = [
    ("a\x00b", "MALFORMED"),
    ("bell\x07", "MALFORMED"),
    ("\x1b[31mred", "MALFORMED"),
    ("rtl\u202eoverride", "MALFORMED"),
    ("tab\tid", "MALFORMED"),
    ("   ", "MALFORMED"),
    ("two words", "MALFORMED"),
    ("ünïcode", "MALFORMED"),
    ("x" * 129, "TOO_LONG"),
]


async def test_poison_ids_are_refused_and_every_view_keeps_serving(exchange: Exchange) -> None:
    for poison, reason in POISON_IDS:
        await _assert_refused(
            exchange,
            exchange.commands.PlaceOrder(limit(poison, BUY, "1.00", "1")),
            ("user_id", reason),
        )
        await _assert_refused(
            exchange,
            exchange.commands.PlaceOrder(limit("alice", BUY, "1.00", "1", client_order_id=poison)),
            ("client_order_id", reason),
        )
    await _views_still_serve(exchange)


async def test_the_longest_visible_ascii_ids_are_taken(exchange: Exchange) -> None:
    user = "!#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~" + "u" * 83
    assert len(user) == 128
    placed = await place(exchange, limit(user, BUY, "1.00", "1", client_order_id=user))
    await exchange.settle(placed.position)
    order = await get_order(exchange, placed.order.order_id)
    assert (order.user_id, order.client_order_id) == (user, user)


async def test_ids_of_every_other_call_are_checked_at_the_door(exchange: Exchange) -> None:
    nul = "a\x00b"
    # Valid ids are the usual accounts': their keys exist before the calls start (the
    # harness issues another account's key when a call names it, which moves the log).
    calls = [
        (exchange.queries.GetOrder(query.GetOrderRequest(order_id=nul)), "order_id"),
        (
            exchange.queries.GetOrder(query.GetOrderRequest(order_id="x", user_id=nul)),
            "user_id",
        ),
        (exchange.queries.ListOrders(query.ListOrdersRequest(user_id=nul)), "user_id"),
        (
            exchange.commands.CancelOrder(cmd.CancelOrderRequest(user_id=nul, order_id="x")),
            "user_id",
        ),
        (
            exchange.commands.CancelOrder(cmd.CancelOrderRequest(user_id="alice", order_id=nul)),
            "order_id",
        ),
        (
            exchange.commands.AmendOrder(
                cmd.AmendOrderRequest(user_id="alice", order_id=nul, quantity="1")
            ),
            "order_id",
        ),
        (
            exchange.commands.CancelAllOrders(cmd.CancelAllOrdersRequest(user_id=nul)),
            "user_id",
        ),
    ]
    for call, field in calls:
        await _assert_refused(exchange, call, (field, "MALFORMED"))
    stream = exchange.market_data.StreamOrderUpdates(md.StreamOrderUpdatesRequest(user_id=nul))
    error = await _refused(stream.read())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [("user_id", "MALFORMED")]
    await _views_still_serve(exchange)


NOT_PLAIN_DECIMALS = [
    "  1.0 ",
    "+1",
    "1_0",
    "\u0661\u0662",
    "\uff11",
    "1\n",
    "1e2",
    "0x10",
    ".5",
    "1.",
    "--1",
]


async def test_decimals_are_plain_ascii_only(exchange: Exchange) -> None:
    for text in NOT_PLAIN_DECIMALS:
        await _assert_refused(
            exchange,
            exchange.commands.PlaceOrder(limit("alice", BUY, "1.00", text)),
            ("quantity", "MALFORMED"),
        )
        await _assert_refused(
            exchange,
            exchange.commands.PlaceOrder(limit("alice", BUY, text, "1")),
            ("price", "MALFORMED"),
        )


async def test_a_huge_value_is_refused_in_a_short_message(exchange: Exchange) -> None:
    error = await _assert_refused(
        exchange,
        exchange.commands.PlaceOrder(limit("alice", BUY, "9" * 10_000, "1")),
        ("price", "TOO_LONG"),
    )
    assert "9999999999" not in (error.details() or "")
    await _assert_refused(
        exchange,
        exchange.commands.PlaceOrder(limit("alice", BUY, "1.00", "1", instrument="X" * 10_000)),
        ("instrument", "UNKNOWN_INSTRUMENT"),
    )


async def test_prices_and_quantities_beyond_what_a_snapshot_holds_are_refused(
    exchange: Exchange,
) -> None:
    # 10^15 lots of 0.0001 is 10^11; one lot more is refused, so sums stay in 64 bits.
    await _assert_refused(
        exchange,
        exchange.commands.PlaceOrder(limit("alice", BUY, "1.00", "100000000000.0001")),
        ("quantity", "TOO_LARGE"),
    )
    await place_settled(exchange, limit("alice", BUY, "1.00", "100000000000"))


async def test_unknown_enum_numbers_are_refused(exchange: Exchange) -> None:
    for field, value in [
        ("side", 99),
        ("type", 99),
        ("time_in_force", 99),
        ("stp", 99),
        ("side", -1),
    ]:
        request = limit("alice", BUY, "1.00", "1")
        setattr(request, field, value)
        await _assert_refused(exchange, exchange.commands.PlaceOrder(request), (field, "MALFORMED"))


async def test_an_unknown_status_filter_is_refused(exchange: Exchange) -> None:
    await _assert_refused(
        exchange,
        exchange.queries.ListOrders(query.ListOrdersRequest(user_id="alice", status=99)),
        ("status", "MALFORMED"),
    )


def _gtd_at(seconds: int, nanos: int = 0) -> cmd.PlaceOrderRequest:
    request = gtd("alice", BUY, "1.00", "1", datetime.now(UTC) + timedelta(days=1))
    request.expire_time.seconds = seconds
    request.expire_time.nanos = nanos
    return request


FAR_FUTURE = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())
TOMORROW = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
BAD_EXPIRE_TIMES = [
    (FAR_FUTURE, 0, "OUT_OF_RANGE"),
    (10**12, 0, "OUT_OF_RANGE"),
    (-(10**12), 0, "OUT_OF_RANGE"),
    (TOMORROW, 2 * 10**9, "OUT_OF_RANGE"),
    (TOMORROW, -1, "OUT_OF_RANGE"),
    (int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()), 0, "OUT_OF_RANGE"),
    (int((datetime.now(UTC) - timedelta(seconds=1)).timestamp()), 0, "IN_THE_PAST"),
]


async def test_expire_times_no_reader_could_hold_or_already_past_are_refused(
    exchange: Exchange,
) -> None:
    for seconds, nanos, reason in BAD_EXPIRE_TIMES:
        await _assert_refused(
            exchange,
            exchange.commands.PlaceOrder(_gtd_at(seconds, nanos)),
            ("expire_time", reason),
        )


async def test_an_expire_time_late_in_2199_is_taken_and_snapshots_still_work(
    exchange: Exchange,
) -> None:
    late = int(datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
    order_id = await place_settled(exchange, _gtd_at(late, 999_999_000))
    assert (await get_order(exchange, order_id)).status == types.ORDER_STATUS_OPEN
    runner = exchange.app.engine_runner
    assert runner is not None
    runner.engine.snapshot()  # holds the expire time in 64-bit nanoseconds
    import orjson

    assert orjson.dumps(runner.engine.snapshot())


async def test_every_stream_entry_request_is_answered_even_a_poison_one(
    exchange: Exchange,
) -> None:
    orders = [
        limit("alice", BUY, "1.00", "1"),
        _gtd_at(10**12),
        _gtd_at(TOMORROW, -1),
        limit("a\x00b", BUY, "1.00", "1"),
        limit("alice", BUY, " 1.00", "1"),
    ]

    async def send() -> AsyncIterator[cmd.StreamPlaceOrdersRequest]:
        for number, order in enumerate(orders, start=1):
            yield cmd.StreamPlaceOrdersRequest(request_id=number, order=order)

    answers = {a.request_id: a async for a in exchange.commands.StreamPlaceOrders(send())}
    assert sorted(answers) == [1, 2, 3, 4, 5]
    assert answers[1].WhichOneof("result") == "placed"
    violations = {
        number: [(v.field, v.reason) for v in answers[number].error.field_violations]
        for number in (2, 3, 4, 5)
    }
    assert violations == {
        2: [("expire_time", "OUT_OF_RANGE")],
        3: [("expire_time", "OUT_OF_RANGE")],
        4: [("user_id", "MALFORMED")],
        5: [("price", "MALFORMED")],
    }
    assert {answers[n].error.code for n in (2, 3, 4, 5)} == {
        grpc.StatusCode.INVALID_ARGUMENT.value[0]
    }


async def test_a_client_order_id_reused_with_other_terms_is_already_exists(
    exchange: Exchange,
) -> None:
    first = await place(exchange, limit("alice", BUY, "1.00", "1", client_order_id="c-1"))
    again = await place(exchange, limit("alice", BUY, "1.00", "1", client_order_id="c-1"))
    assert (again.duplicate, again.order.order_id) == (True, first.order.order_id)
    await exchange.settle(first.position)  # the engine's answer is in the log: it stays still
    head = await _head(exchange)
    for other in (
        limit("alice", SELL, "1.00", "1", client_order_id="c-1"),
        limit("alice", BUY, "2.00", "1", client_order_id="c-1"),
        limit("alice", BUY, "1.00", "2", client_order_id="c-1"),
        limit("alice", BUY, "1.00", "1", client_order_id="c-1", post_only=True),
    ):
        error = await _refused(exchange.commands.PlaceOrder(other))
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "c-1" in (error.details() or "")
    assert await _head(exchange) == head


async def test_a_min_position_beyond_the_log_is_out_of_range_at_once(exchange: Exchange) -> None:
    placed = await place(exchange, limit("alice", BUY, "1.00", "1"))
    tx, _ = (int(part) for part in placed.position.split(":"))
    # Positions order by transaction first: a transaction a million ahead lies beyond the
    # log (a larger seq within an old one sorts before every later write, so it does not).
    error = await _refused(
        exchange.queries.GetOrder(
            query.GetOrderRequest(order_id="x", min_position=f"{tx + 1_000_000}:1"), timeout=30
        )
    )
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_a_min_position_the_views_have_not_reached_waits_the_deadline(
    exchange: Exchange,
) -> None:
    await exchange.app.projections.stop()  # the views stop here; the log goes on
    placed = await place(exchange, limit("alice", BUY, "1.00", "1"))
    error = await _refused(
        exchange.queries.GetOrder(
            query.GetOrderRequest(order_id=placed.order.order_id, min_position=placed.position),
            timeout=0.5,
        )
    )
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_refused_cancel_all_names_its_instrument_without_echoing_it(
    exchange: Exchange,
) -> None:
    await _assert_refused(
        exchange,
        exchange.commands.CancelAllOrders(
            cmd.CancelAllOrdersRequest(user_id="alice", instrument=" " + BTC)
        ),
        ("instrument", "UNKNOWN_INSTRUMENT"),
    )
