"""Book level deltas: with `book_deltas=True` each command that changed resting levels ends
with one BookLevelsChanged per instrument it changed (net change, bids then asks, best
first, sequence per instrument from 1). Exact scenarios, then properties on random streams:
folding the deltas from an empty book gives the engine's book after every command.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_dsl import BUY, INSTRUMENT, SELL, SYMBOL, accepted, cancelled, limit, stop_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.codec import event_from_dict, event_to_dict
from domain.commands import (
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    PlaceOrder,
)
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.events import (
    BookLevelsChanged,
    ClockAdvanced,
    Event,
    LevelChanged,
    OrderExpired,
    OrderRejected,
    StopTriggered,
)
from domain.instruments import Instrument
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce

OTHER = "U"
OTHER_INSTRUMENT = Instrument(OTHER, Decimal("1"), Decimal("1"))


def engine_with_deltas() -> MatchingEngine:
    return MatchingEngine([INSTRUMENT, OTHER_INSTRUMENT], book_deltas=True)


def changed(
    sequence: int, *levels: tuple[Side, int, int, int], at: int = 0, symbol: str = SYMBOL
) -> BookLevelsChanged:
    return BookLevelsChanged(symbol, sequence, tuple(LevelChanged(*level) for level in levels), at)


def deltas_of(events: list[Event]) -> list[BookLevelsChanged]:
    return [event for event in events if isinstance(event, BookLevelsChanged)]


def feed(engine: MatchingEngine, *commands: Command) -> None:
    for command in commands:
        assert not isinstance(engine.handle(command)[0], OrderRejected), command


# ---------------------------------------------------------------- scenarios


def test_a_resting_limit_order_is_one_delta_with_sequence_1_after_its_acceptance() -> None:
    engine = engine_with_deltas()
    bid = limit("b1", BUY, 5, 99)

    assert engine.handle(bid) == [accepted(bid), changed(1, (BUY, 99, 5, 1))]
    assert engine.handle(limit("b2", BUY, 3, 99))[-1] == changed(2, (BUY, 99, 8, 2))


def test_a_crossing_order_that_takes_part_of_a_level_leaves_its_new_quantity() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("a1", SELL, 5, 101), limit("a2", SELL, 3, 101, user="u2"))

    events = engine.handle(limit("b1", BUY, 6, 101, user="u3"))

    assert deltas_of(events) == [changed(3, (SELL, 101, 2, 1))]
    assert events[-1] == changed(3, (SELL, 101, 2, 1))


def test_a_consumed_level_is_quantity_0_count_0_and_bids_come_before_asks() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("a1", SELL, 5, 101), limit("a2", SELL, 2, 102))

    events = engine.handle(limit("b1", BUY, 8, 102, user="u2"))

    # Took both ask levels, rested its remaining 1 at 102.
    assert events[-1] == changed(3, (BUY, 102, 1, 1), (SELL, 101, 0, 0), (SELL, 102, 0, 0))
    assert engine.book_levels(SYMBOL) == ([(102, 1, 1)], [])


def test_cancels_change_then_remove_the_level() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("b1", BUY, 4, 99), limit("b2", BUY, 3, 99))

    assert engine.handle(CancelOrder("b1")) == [
        cancelled("b1", "USER_REQUESTED", 4),
        changed(3, (BUY, 99, 3, 1)),
    ]
    assert engine.handle(CancelOrder("b2"))[-1] == changed(4, (BUY, 99, 0, 0))


def test_amends_down_keep_the_level_and_price_amends_move_it() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("b1", BUY, 5, 99), limit("b2", BUY, 1, 98))

    assert deltas_of(engine.handle(AmendOrder("b1", quantity=2))) == [changed(3, (BUY, 99, 2, 1))]
    assert deltas_of(engine.handle(AmendOrder("b1", price=98))) == [
        changed(4, (BUY, 99, 0, 0), (BUY, 98, 3, 2))
    ]
    # Raising the quantity loses priority but the order stays at its level: one change.
    assert deltas_of(engine.handle(AmendOrder("b1", quantity=7))) == [changed(5, (BUY, 98, 8, 2))]


def test_an_ioc_remainder_never_shows_and_an_ioc_that_takes_nothing_changes_nothing() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("a1", SELL, 3, 101))

    taker = limit("b1", BUY, 5, 102, user="u2", time_in_force=TimeInForce.IOC)
    assert deltas_of(engine.handle(taker)) == [changed(2, (SELL, 101, 0, 0))]

    feed(engine, limit("a2", SELL, 3, 105))
    missing = limit("b2", BUY, 5, 102, user="u2", time_in_force=TimeInForce.IOC)
    assert deltas_of(engine.handle(missing)) == []
    assert deltas_of(engine.handle(limit("b3", BUY, 5, 102, user="u2")))[0].sequence == 4


def test_a_triggered_stop_is_in_the_same_delta_as_the_trade_that_triggered_it() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("a1", SELL, 2, 101))
    # A waiting stop is not on the book.
    assert deltas_of(engine.handle(stop_limit("s1", BUY, 3, 103, 101, user="u3"))) == []

    events = engine.handle(limit("b1", BUY, 1, 101, user="u2"))

    # b1 takes 1 at 101, the stop triggers, takes the last 1 and rests 2 at 103.
    assert [type(event) for event in events].index(StopTriggered) < len(events) - 1
    assert deltas_of(events) == [changed(2, (BUY, 103, 2, 1), (SELL, 101, 0, 0))]
    assert events[-1] == changed(2, (BUY, 103, 2, 1), (SELL, 101, 0, 0))


def test_expiry_by_advancing_the_clock_is_a_delta_at_the_new_time() -> None:
    engine = engine_with_deltas()
    feed(
        engine,
        limit("b1", BUY, 4, 99, time_in_force=TimeInForce.GTD, expire_time=10),
        limit("b2", BUY, 1, 99),
    )

    assert engine.handle(AdvanceTime(10)) == [
        ClockAdvanced(10),
        OrderExpired("b1", SYMBOL, 4, 0, 10),
        changed(3, (BUY, 99, 1, 1), at=10),
    ]
    assert engine.handle(AdvanceTime(20)) == [ClockAdvanced(20)]


def test_cancel_all_across_two_instruments_is_one_delta_each_with_its_own_sequence() -> None:
    engine = engine_with_deltas()
    other_bid = PlaceOrder("x1", "u1", OTHER, BUY, OrderType.LIMIT, 2, 50)
    feed(engine, limit("b1", BUY, 4, 99), other_bid, limit("a1", SELL, 1, 105))

    events = engine.handle(CancelAllOrders("u1"))

    assert deltas_of(events) == [
        changed(3, (BUY, 99, 0, 0), (SELL, 105, 0, 0)),
        changed(2, (BUY, 50, 0, 0), symbol=OTHER),
    ]
    assert events[-2:] == deltas_of(events)


def test_rejections_and_no_ops_emit_no_delta() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("b1", BUY, 4, 99))

    assert engine.handle(limit("bad", BUY, 0, 99)) == [
        OrderRejected("bad", "u1", SYMBOL, "INVALID_QUANTITY", 0)
    ]
    assert deltas_of(engine.handle(CancelOrder("unknown"))) == []
    assert deltas_of(engine.handle(AmendOrder("b1", quantity=99, price=0))) == []
    post_only_crossing = limit("p1", SELL, 1, 99, user="u2", post_only=True)
    assert deltas_of(engine.handle(post_only_crossing)) == []
    assert deltas_of(engine.handle(limit("b2", BUY, 1, 98)))[0].sequence == 2


def test_with_deltas_off_no_delta_is_ever_emitted() -> None:
    engine = MatchingEngine([INSTRUMENT])
    commands: list[Command] = [
        limit("a1", SELL, 5, 101),
        limit("b1", BUY, 2, 101, user="u2"),
        AmendOrder("a1", price=102),
        CancelOrder("a1"),
    ]
    assert all(deltas_of(engine.handle(command)) == [] for command in commands)
    assert engine.snapshot()["books"][0]["delta_sequence"] == 0


# ---------------------------------------------------------------- codec, snapshot, replayer


def test_the_codec_writes_decimals_like_the_instrument_and_reads_them_back() -> None:
    btc = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"))
    event = BookLevelsChanged(
        "BTC-USD",
        7,
        (LevelChanged(BUY, 4_500_000, 15_000, 2), LevelChanged(SELL, 4_500_100, 0, 0)),
        5_000_000_000,
    )

    data = event_to_dict(event, {"BTC-USD": btc})

    assert data == {
        "type": "BookLevelsChanged",
        "instrument": "BTC-USD",
        "sequence": 7,
        "levels": [
            {"side": "BUY", "price": "45000.00", "quantity": "1.5000", "order_count": 2},
            {"side": "SELL", "price": "45001.00", "quantity": "0.0000", "order_count": 0},
        ],
        "changed_at": "1970-01-01T00:00:05Z",
    }
    assert event_from_dict(orjson.loads(orjson.dumps(data)), {"BTC-USD": btc}) == event


def test_the_codec_refuses_levels_that_are_not_a_list_of_objects() -> None:
    data = {
        "type": "BookLevelsChanged",
        "instrument": SYMBOL,
        "sequence": 1,
        "levels": {"side": "BUY"},
        "changed_at": "1970-01-01T00:00:00Z",
    }
    with pytest.raises(InvalidField) as refused:
        event_from_dict(data, {SYMBOL: INSTRUMENT})
    assert (refused.value.field, refused.value.reason) == ("levels", "MALFORMED")
    with pytest.raises(InvalidField) as refused:
        event_from_dict({**data, "levels": [{"side": "BUY", "price": "1.5"}]}, {SYMBOL: INSTRUMENT})
    assert refused.value.field == "price"


def test_the_delta_sequence_survives_a_snapshot_and_an_older_snapshot_starts_at_0() -> None:
    engine = engine_with_deltas()
    feed(engine, limit("b1", BUY, 4, 99), limit("b2", BUY, 1, 98))
    snapshot = orjson.loads(orjson.dumps(engine.snapshot()))

    restored = MatchingEngine.restore(snapshot, book_deltas=True)
    assert deltas_of(restored.handle(CancelOrder("b2"))) == [changed(3, (BUY, 98, 0, 0))]

    for book in snapshot["books"]:
        del book["delta_sequence"]  # as written before deltas existed
    older = MatchingEngine.restore(snapshot, book_deltas=True)
    assert deltas_of(older.handle(CancelOrder("b2"))) == [changed(1, (BUY, 98, 0, 0))]
    assert deltas_of(MatchingEngine.restore(snapshot).handle(CancelOrder("b1"))) == []


def _replay(*flags: str) -> list[dict[str, Any]]:
    lines = [
        {"op": "instrument", "symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001"},
        {
            "op": "place",
            "order_id": "s1",
            "user_id": "alice",
            "instrument": "BTC-USD",
            "side": "SELL",
            "type": "LIMIT",
            "price": "45000.00",
            "quantity": "1.0",
        },
        {"op": "cancel", "order_id": "s1"},
    ]
    result = subprocess.run(
        [sys.executable, "-m", "domain.replay", *flags],
        input=b"".join(orjson.dumps(line) + b"\n" for line in lines),
        capture_output=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_the_replayer_writes_deltas_only_with_its_flag() -> None:
    plain, with_deltas = _replay(), _replay("--book-deltas")

    assert [event["type"] for event in plain] == [
        "InstrumentAdded",
        "OrderAccepted",
        "OrderCancelled",
    ]
    assert [event for event in with_deltas if event["type"] != "BookLevelsChanged"] == plain
    assert [event for event in with_deltas if event["type"] == "BookLevelsChanged"] == [
        {
            "type": "BookLevelsChanged",
            "instrument": "BTC-USD",
            "sequence": sequence,
            "levels": [
                {"side": "SELL", "price": "45000.00", "quantity": quantity, "order_count": count}
            ],
            "changed_at": "1970-01-01T00:00:00Z",
        }
        for sequence, quantity, count in ((1, "1.0000", 1), (2, "0.0000", 0))
    ]


# ---------------------------------------------------------------- properties

SYMBOLS = st.sampled_from([SYMBOL, OTHER])
SIDES = st.sampled_from([BUY, SELL])
USERS = st.sampled_from(["u0", "u1", "u2"])
STPS = st.sampled_from(list(SelfTradePrevention))
PRICES = st.integers(96, 104)
QUANTITIES = st.integers(1, 12)
REF = st.integers(0, 10_000)  # an earlier order id, modulo how many there are

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("limit"),
            SYMBOLS,
            SIDES,
            QUANTITIES,
            PRICES,
            USERS,
            st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
            st.booleans(),
            STPS,
        ),
        st.tuples(
            st.just("market"),
            SYMBOLS,
            SIDES,
            QUANTITIES,
            USERS,
            st.one_of(st.none(), st.integers(0, 500)),
            STPS,
        ),
        st.tuples(
            st.just("stop"), SYMBOLS, SIDES, QUANTITIES, PRICES, PRICES, USERS, st.booleans()
        ),
        st.tuples(st.just("gtd"), SYMBOLS, SIDES, QUANTITIES, PRICES, USERS, st.integers(1, 5)),
        st.tuples(st.just("cancel"), REF),
        st.tuples(
            st.just("amend"),
            REF,
            st.one_of(st.none(), st.integers(1, 15)),
            st.one_of(st.none(), PRICES),
        ),
        st.tuples(st.just("time"), st.integers(0, 3)),
        st.tuples(st.just("cancel_all"), USERS, st.one_of(st.none(), SYMBOLS)),
    ),
    max_size=60,
)

PROPERTY_SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def to_commands(ops: list[tuple[Any, ...]]) -> list[Command]:
    commands: list[Command] = []
    ids: list[str] = []
    clock = 0
    for op in ops:
        kind = op[0]
        if kind in ("cancel", "amend"):
            target = ids[op[1] % len(ids)] if ids else "none"
            commands.append(
                CancelOrder(target) if kind == "cancel" else AmendOrder(target, op[2], op[3])
            )
            continue
        if kind == "time":
            clock += op[1]
            commands.append(AdvanceTime(clock))
            continue
        if kind == "cancel_all":
            commands.append(CancelAllOrders(op[1], op[2]))
            continue
        order_id = f"o{len(ids) + 1}"
        ids.append(order_id)
        symbol, side, quantity = op[1], op[2], op[3]
        if kind == "limit":
            price, user, tif, post_only, stp = op[4:]
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    symbol,
                    side,
                    OrderType.LIMIT,
                    quantity,
                    price,
                    time_in_force=tif,
                    post_only=post_only and tif is TimeInForce.GTC,
                    stp=stp,
                )
            )
        elif kind == "market":
            user, bps, stp = op[4:]
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    symbol,
                    side,
                    OrderType.MARKET,
                    quantity,
                    max_slippage_bps=bps,
                    stp=stp,
                )
            )
        elif kind == "stop":
            price, stop_price, user, is_limit = op[4:]
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    symbol,
                    side,
                    OrderType.STOP_LIMIT if is_limit else OrderType.STOP_MARKET,
                    quantity,
                    price if is_limit else None,
                    stop_price=stop_price,
                )
            )
        else:
            price, user, lifetime = op[4:]
            commands.append(
                PlaceOrder(
                    order_id,
                    user,
                    symbol,
                    side,
                    OrderType.LIMIT,
                    quantity,
                    price,
                    time_in_force=TimeInForce.GTD,
                    expire_time=clock + lifetime,
                )
            )
    return commands


Levels = dict[Side, dict[int, tuple[int, int]]]


def fold(mirror: Levels, delta: BookLevelsChanged) -> None:
    """Apply a delta the way a consumer would; it must change every level it names."""
    for level in delta.levels:
        side = mirror[level.side]
        assert (level.quantity == 0) == (level.order_count == 0), level
        assert side.get(level.price, (0, 0)) != (level.quantity, level.order_count), level
        if level.order_count:
            side[level.price] = (level.quantity, level.order_count)
        else:
            del side[level.price]


def engine_levels(engine: MatchingEngine, symbol: str) -> Levels:
    bids, asks = engine.book_levels(symbol, depth=10**9)
    return {
        BUY: {price: (total, count) for price, total, count in bids},
        SELL: {price: (total, count) for price, total, count in asks},
    }


def in_delta_order(delta: BookLevelsChanged) -> bool:
    keys = [
        (level.side is SELL, level.price * (1 if level.side is SELL else -1))
        for level in delta.levels
    ]
    return keys == sorted(set(keys))


@PROPERTY_SETTINGS
@given(OPS)
def test_folding_the_deltas_gives_the_engines_book_after_every_command(
    ops: list[tuple[Any, ...]],
) -> None:
    engine = engine_with_deltas()
    without = MatchingEngine([INSTRUMENT, OTHER_INSTRUMENT])
    mirrors: dict[str, Levels] = {symbol: {BUY: {}, SELL: {}} for symbol in (SYMBOL, OTHER)}
    sequences = {SYMBOL: 0, OTHER: 0}
    instruments = engine.instruments
    for command in to_commands(ops):
        events = engine.handle(command)
        deltas = deltas_of(events)
        # Deltas come last, one per instrument, and add to the events without deltas.
        assert events[: len(events) - len(deltas)] == without.handle(command), command
        assert len({delta.instrument for delta in deltas}) == len(deltas)
        for delta in deltas:
            sequences[delta.instrument] += 1
            assert delta.sequence == sequences[delta.instrument]
            assert delta.levels and in_delta_order(delta), delta
            assert event_from_dict(event_to_dict(delta, instruments), instruments) == delta
            fold(mirrors[delta.instrument], delta)
        for symbol, mirror in mirrors.items():
            assert mirror == engine_levels(engine, symbol), (command, symbol)


@PROPERTY_SETTINGS
@given(OPS, OPS)
def test_a_restored_engine_goes_on_with_the_same_deltas(
    past_ops: list[tuple[Any, ...]], future_ops: list[tuple[Any, ...]]
) -> None:
    commands = to_commands(past_ops + future_ops)
    past, future = commands[: len(past_ops)], commands[len(past_ops) :]
    original = engine_with_deltas()
    for command in past:
        original.handle(command)
    snapshot = orjson.loads(orjson.dumps(original.snapshot()))
    restored = MatchingEngine.restore(snapshot, book_deltas=True)
    for command in future:
        assert restored.handle(command) == original.handle(command), command
    assert restored.snapshot() == original.snapshot()
