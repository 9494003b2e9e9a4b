"""Properties on random command streams (hypothesis).

- the engine agrees with a naive list-based reference book, trade for trade, on every
  cancel and rejection reason, and on the final book (price-time priority, maker price);
- invariants: never crossed at rest; filled + open + cancelled = quantity for every order;
  trades at the maker's price; FOK all-or-nothing; post-only never takes;
- handling the same commands again, or restoring a snapshot, gives the same state and the
  same future events (streams here also use stops, GTD and time).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from unittest.mock import patch

import orjson
from engine_dsl import INSTRUMENT, SYMBOL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive_book import NaiveBook, NaiveOrder, Outcome

from domain import order_lifecycle
from domain.book import OrderBook
from domain.commands import (
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    PlaceOrder,
)
from domain.engine import MatchingEngine
from domain.engine_state import EngineState
from domain.events import (
    AmendRejected,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    StopTriggered,
    TradeExecuted,
)
from domain.matching import execute
from domain.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce

SIDES = st.sampled_from([Side.BUY, Side.SELL])
USERS = st.sampled_from(["u0", "u1", "u2"])
STPS = st.sampled_from(list(SelfTradePrevention))
PRICES = st.integers(95, 105)
QUANTITIES = st.integers(1, 20)
REF = st.integers(0, 10_000)  # picks an earlier order id, modulo how many there are

LIMIT_OP = st.tuples(
    st.just("limit"),
    SIDES,
    QUANTITIES,
    PRICES,
    USERS,
    st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
    st.booleans(),
    STPS,
)
MARKET_OP = st.tuples(
    st.just("market"),
    SIDES,
    QUANTITIES,
    USERS,
    st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
    st.one_of(st.none(), st.integers(0, 800)),
    STPS,
)
CANCEL_OP = st.tuples(st.just("cancel"), REF)
AMEND_OP = st.tuples(
    st.just("amend"), REF, st.one_of(st.none(), st.integers(1, 25)), st.one_of(st.none(), PRICES)
)
BASIC_OPS = st.lists(st.one_of(LIMIT_OP, LIMIT_OP, MARKET_OP, CANCEL_OP, AMEND_OP), max_size=60)

STOP_OP = st.tuples(st.just("stop"), SIDES, QUANTITIES, PRICES, PRICES, USERS, st.booleans(), STPS)
GTD_OP = st.tuples(st.just("gtd"), SIDES, QUANTITIES, PRICES, USERS, st.integers(1, 6))
TIME_OP = st.tuples(st.just("time"), st.integers(0, 3))
CANCEL_ALL_OP = st.tuples(st.just("cancel_all"), USERS, st.booleans())  # (user, on SYMBOL only)
FULL_OPS = st.lists(
    st.one_of(
        LIMIT_OP, LIMIT_OP, MARKET_OP, CANCEL_OP, AMEND_OP, STOP_OP, GTD_OP, TIME_OP, CANCEL_ALL_OP
    ),
    max_size=60,
)

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def to_commands(ops: list[tuple[Any, ...]]) -> list[Command]:
    """Turn drawn ops into engine commands (ids o1, o2, ...; refs pick earlier ids)."""
    commands: list[Command] = []
    ids: list[str] = []
    clock = 0

    def ref(number: int) -> str:
        return ids[number % len(ids)] if ids else "none"

    for op in ops:
        kind = op[0]
        if kind in ("cancel", "amend"):
            target = ref(op[1])
            if kind == "cancel":
                commands.append(CancelOrder(target))
            else:
                commands.append(AmendOrder(target, op[2], op[3]))
            continue
        if kind == "cancel_all":
            commands.append(CancelAllOrders(op[1], SYMBOL if op[2] else None))
            continue
        if kind == "time":
            clock += op[1]
            commands.append(AdvanceTime(clock))
            continue
        order_id = f"o{len(ids) + 1}"
        ids.append(order_id)
        if kind == "limit":
            _, side, quantity, price, user, tif, post_only, stp = op
            post_only = post_only and tif is TimeInForce.GTC
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    SYMBOL,
                    side,
                    OrderType.LIMIT,
                    quantity,
                    price,
                    time_in_force=tif,
                    post_only=post_only,
                    stp=stp,
                )
            )
        elif kind == "market":
            _, side, quantity, user, tif, bps, stp = op
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    SYMBOL,
                    side,
                    OrderType.MARKET,
                    quantity,
                    time_in_force=tif,
                    max_slippage_bps=bps,
                    stp=stp,
                )
            )
        elif kind == "stop":
            _, side, quantity, price, stop_price, user, is_limit, stp = op
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    SYMBOL,
                    side,
                    OrderType.STOP_LIMIT if is_limit else OrderType.STOP_MARKET,
                    quantity,
                    price if is_limit else None,
                    stop_price=stop_price,
                    stp=stp,
                )
            )
        else:
            _, side, quantity, price, user, lifetime = op
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    SYMBOL,
                    side,
                    OrderType.LIMIT,
                    quantity,
                    price,
                    time_in_force=TimeInForce.GTD,
                    expire_time=clock + lifetime,
                )
            )
    return commands


def engine_outcome(events: list[Event]) -> Outcome:
    outcome = Outcome()
    for event in events:
        if isinstance(event, TradeExecuted):
            outcome.trades.append(
                (event.maker_order_id, event.taker_order_id, event.price, event.quantity)
            )
        elif isinstance(event, OrderCancelled):
            outcome.cancels.append((event.order_id, event.reason, event.cancelled_quantity))
        elif isinstance(event, OrderRejected | CancelRejected | AmendRejected):
            outcome.rejected = event.reason
    return outcome


def naive_outcome(book: NaiveBook, command: Command) -> Outcome:
    if isinstance(command, PlaceOrder):
        return book.place(
            NaiveOrder(
                command.order_id,
                command.user_id,
                command.side is Side.BUY,
                command.order_type is OrderType.MARKET,
                command.price,
                command.quantity,
                command.time_in_force.value,
                command.post_only,
                command.stp.value,
                command.max_slippage_bps,
            )
        )
    if isinstance(command, CancelOrder):
        return book.cancel(command.order_id)
    assert isinstance(command, AmendOrder)
    return book.amend(command.order_id, command.quantity, command.price)


@PROPERTY_SETTINGS
@given(BASIC_OPS)
def test_engine_agrees_with_the_naive_reference_book(ops: list[tuple[Any, ...]]) -> None:
    engine = MatchingEngine([INSTRUMENT])
    reference = NaiveBook()
    for command in to_commands(ops):
        got = engine_outcome(engine.handle(command))
        expected = naive_outcome(reference, command)
        assert got == expected, command
        assert engine.book_levels(SYMBOL, 100) == reference.levels()


def check_invariants(engine: MatchingEngine, commands: list[Command]) -> list[Event]:
    """Run the stream, checking the invariants after every command; return all events."""
    quantity: dict[str, int] = {}
    price: dict[str, int | None] = {}
    filled: dict[str, int] = defaultdict(int)
    cancelled: dict[str, int] = defaultdict(int)
    place_by_id: dict[str, PlaceOrder] = {}
    all_events: list[Event] = []
    for command in commands:
        if isinstance(command, PlaceOrder):
            place_by_id[command.order_id] = command
        events = engine.handle(command)
        all_events.extend(events)
        for event in events:
            if isinstance(event, OrderAccepted | OrderAmended):
                quantity[event.order_id] = event.quantity
                price[event.order_id] = event.price
            elif isinstance(event, OrderPartiallyFilled | OrderFilled):
                filled[event.order_id] += event.quantity
            elif isinstance(event, OrderCancelled):
                cancelled[event.order_id] += event.cancelled_quantity
            elif isinstance(event, OrderExpired):
                cancelled[event.order_id] += event.expired_quantity
            elif isinstance(event, TradeExecuted):
                assert event.price == price[event.maker_order_id], "trade off the maker's price"
                assert not place_by_id[event.taker_order_id].post_only, "a post-only order took"
        bids, asks = engine.book_levels(SYMBOL, 1)
        if bids and asks:
            assert bids[0][0] < asks[0][0], "book crossed at rest"
        for order_id, total in quantity.items():
            open_order = engine.open_order(order_id)
            still_open = open_order.remaining if open_order is not None else 0
            assert filled[order_id] + still_open + cancelled[order_id] == total, order_id
    for order_id, command in place_by_id.items():
        if command.time_in_force is TimeInForce.FOK and order_id in quantity:
            assert filled[order_id] in (0, command.quantity), "FOK partly filled"
    return all_events


@PROPERTY_SETTINGS
@given(FULL_OPS)
def test_invariants_hold_on_every_stream(ops: list[tuple[Any, ...]]) -> None:
    check_invariants(MatchingEngine([INSTRUMENT]), to_commands(ops))


@PROPERTY_SETTINGS
@given(FULL_OPS, FULL_OPS, st.sampled_from([None, 3]))
def test_a_restored_snapshot_continues_exactly_as_the_original(
    past_ops: list[tuple[Any, ...]], future_ops: list[tuple[Any, ...]], memory: int | None
) -> None:
    commands = to_commands(past_ops + future_ops)
    past, future = commands[: len(past_ops)], commands[len(past_ops) :]
    original = MatchingEngine([INSTRUMENT], closed_order_memory=memory)
    events = [event for command in past for event in original.handle(command)]
    snapshot = original.snapshot()

    # Handling the same commands again (the service's rebuild from its log) gives the
    # same events and the same state; so does restoring the snapshot, through its JSON.
    replayed = MatchingEngine([INSTRUMENT], closed_order_memory=memory)
    assert [event for command in past for event in replayed.handle(command)] == events
    restored = MatchingEngine.restore(orjson.loads(orjson.dumps(snapshot)))
    assert replayed.snapshot() == snapshot
    assert restored.snapshot() == snapshot

    for command in future:
        expected = original.handle(command)
        assert replayed.handle(command) == expected, command
        assert restored.handle(command) == expected, command
    assert replayed.snapshot() == restored.snapshot() == original.snapshot()


def _holds(stop: Order, last: int) -> bool:
    assert stop.stop_price is not None
    return last >= stop.stop_price if stop.is_buy else last <= stop.stop_price


def _trigger_stops_by_scanning(state: EngineState, book: OrderBook, events: list[Event]) -> None:
    """The trigger rule as first written, the reference for the price-indexed stops: scan
    every waiting stop in arrival order and trigger the first whose condition holds."""
    while book.stops:
        last = book.last_price
        if last is None:
            return
        chosen = next((stop for stop in book.stops.values() if _holds(stop, last)), None)
        if chosen is None:
            return
        book.remove_stop(chosen.order_id)
        chosen.triggered = True
        assert chosen.stop_price is not None
        events.append(
            StopTriggered(chosen.order_id, book.symbol, chosen.stop_price, last, state.now)
        )
        execute(state, book, chosen, events)


# Streams where stops are most of the orders and prices few, so that cascades (a stop's
# trades triggering more), several stops holding at once and a last price landing exactly
# on a stop price are common.
NEAR = st.integers(98, 102)
NEAR_STOP_OP = st.tuples(st.just("stop"), SIDES, QUANTITIES, NEAR, NEAR, USERS, st.booleans(), STPS)
NEAR_LIMIT_OP = st.tuples(
    st.just("limit"), SIDES, QUANTITIES, NEAR, USERS, st.just(TimeInForce.GTC), st.just(False), STPS
)
STOP_HEAVY_OPS = st.lists(
    st.one_of(
        NEAR_STOP_OP, NEAR_STOP_OP, NEAR_STOP_OP, NEAR_LIMIT_OP, NEAR_LIMIT_OP, MARKET_OP, CANCEL_OP
    ),
    max_size=80,
)


@PROPERTY_SETTINGS
@given(STOP_HEAVY_OPS)
def test_stops_trigger_exactly_as_a_scan_in_arrival_order_would(
    ops: list[tuple[Any, ...]],
) -> None:
    indexed, scanning = MatchingEngine([INSTRUMENT]), MatchingEngine([INSTRUMENT])
    for command in to_commands(ops):
        expected = indexed.handle(command)
        with patch.object(order_lifecycle, "trigger_stops", _trigger_stops_by_scanning):
            assert scanning.handle(command) == expected, command
