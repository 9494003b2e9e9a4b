"""Engine scenarios with balances on: transfers, holds, settlement with fees, market
orders paying as they fill, amends, releases and venue controls, with exact amounts.

The instrument is BTC-USD with a tick of 1 USD and a lot of 0.01 BTC; USD has precision 2
(a unit is a cent) and BTC 8 (a satoshi). So a lot at price p costs p cents of notional,
and a lot is 1,000,000 satoshis. Maker fee 5 bps, taker fee 10 bps.
"""

from __future__ import annotations

from decimal import Decimal

from domain import reasons
from domain.commands import (
    AddAsset,
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    EnableAccounts,
    PlaceOrder,
    SetInstrumentStatus,
    Withdraw,
)
from domain.engine import MatchingEngine
from domain.events import (
    AccountsRejected,
    AmendRejected,
    CancelRejected,
    Event,
    FundsDeposited,
    FundsHeld,
    FundsReleased,
    FundsWithdrawn,
    InstrumentRejected,
    InstrumentStatusChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    TradeSettled,
    TransferRejected,
)
from domain.instruments import Instrument, InstrumentStatus
from domain.orders import OrderType, Side, TimeInForce

BTC_USD = Instrument("BTC-USD", Decimal(1), Decimal("0.01"), None, None, None, 5, 10)
NO_FEES = Instrument("ETH-USD", Decimal(1), Decimal("0.01"))
SATS_PER_LOT = 1_000_000
BUY, SELL = Side.BUY, Side.SELL


def engine_with_accounts(*instruments: Instrument) -> MatchingEngine:
    engine = MatchingEngine()
    for command in (AddAsset("USD", 2), AddAsset("BTC", 8), AddAsset("ETH", 8), EnableAccounts()):
        engine.handle(command)
    for instrument in instruments or (BTC_USD,):
        engine.handle(AddInstrument(instrument))
    return engine


def limit(
    order_id: str, user: str, side: Side, lots: int, price: int, **more: object
) -> PlaceOrder:
    symbol = str(more.pop("instrument", "BTC-USD"))
    return PlaceOrder(order_id, user, symbol, side, OrderType.LIMIT, lots, price, **more)  # type: ignore[arg-type]


def market(order_id: str, user: str, side: Side, lots: int, **more: object) -> PlaceOrder:
    symbol = str(more.pop("instrument", "BTC-USD"))
    return PlaceOrder(order_id, user, symbol, side, OrderType.MARKET, lots, **more)  # type: ignore[arg-type]


def run(engine: MatchingEngine, *commands: Command) -> list[Event]:
    events: list[Event] = []
    for command in commands:
        events += engine.handle(command)
    return events


def of_type(events: list[Event], kind: type) -> list[Event]:
    return [event for event in events if isinstance(event, kind)]


# ------------------------------------------------------------------ transfers


def test_deposits_and_withdrawals_move_available_once_per_transfer_id() -> None:
    engine = engine_with_accounts()
    events = run(
        engine,
        Deposit("t1", "alice", "USD", 10_000),
        Deposit("t1", "alice", "USD", 10_000),  # a retry: refused, nothing moves
        Withdraw("t2", "alice", "USD", 10_001),
        Withdraw("t3", "alice", "USD", 2_500),
        Withdraw("t3", "alice", "USD", 2_500),
    )
    assert events == [
        FundsDeposited("t1", "alice", "USD", 10_000, 0),
        TransferRejected("t1", "alice", "USD", 10_000, reasons.DUPLICATE_TRANSFER_ID, 0),
        TransferRejected("t2", "alice", "USD", 10_001, reasons.INSUFFICIENT_FUNDS, 0),
        FundsWithdrawn("t3", "alice", "USD", 2_500, 0),
        TransferRejected("t3", "alice", "USD", 2_500, reasons.DUPLICATE_TRANSFER_ID, 0),
    ]
    assert engine.balance("alice", "USD") == (7_500, 0)


def test_without_accounts_a_transfer_is_refused_and_matching_is_as_before() -> None:
    engine = MatchingEngine([BTC_USD])
    assert engine.handle(Deposit("t1", "alice", "USD", 1)) == [
        TransferRejected("t1", "alice", "USD", 1, reasons.ACCOUNTS_DISABLED, 0)
    ]
    events = run(engine, limit("s", "bob", SELL, 1, 100), limit("b", "alice", BUY, 1, 100))
    assert not of_type(events, TradeSettled) and not of_type(events, FundsHeld)


def test_accounts_cannot_be_turned_on_once_orders_were_accepted() -> None:
    engine = MatchingEngine([BTC_USD])
    engine.handle(limit("s", "bob", SELL, 1, 100))
    assert engine.handle(EnableAccounts()) == [AccountsRejected(reasons.ORDERS_EXIST, 0)]
    assert not engine.accounts_enabled


def test_an_instrument_finer_than_its_quote_assets_unit_is_refused() -> None:
    engine = engine_with_accounts()
    fine = Instrument("FINE-USD", Decimal("0.01"), Decimal("0.01"))  # a tick x lot: 0.0001 USD
    assert engine.handle(AddInstrument(fine)) == [
        InstrumentRejected("FINE-USD", reasons.ASSET_PRECISION_TOO_FINE)
    ]
    nameless = Instrument("NOASSETS", Decimal(1), Decimal(1))
    assert engine.handle(AddInstrument(nameless)) == [
        InstrumentRejected("NOASSETS", reasons.ASSETS_REQUIRED)
    ]


# ------------------------------------------------------------------ holds


def test_a_limit_buy_holds_its_price_and_the_highest_fee_per_lot_rounded_up() -> None:
    engine = engine_with_accounts()
    run(engine, Deposit("t", "alice", "USD", 10_000_000))
    # 150 lots (1.5 BTC) at 45,001: per lot 45,001 cents + ceil(45.001) = 46 cents of fee.
    events = engine.handle(limit("b", "alice", BUY, 150, 45_001))
    assert of_type(events, FundsHeld) == [FundsHeld("b", "alice", "USD", 150 * 45_047, 0)]
    assert engine.balance("alice", "USD") == (10_000_000 - 6_757_050, 6_757_050)


def test_a_limit_sell_holds_its_quantity_in_base() -> None:
    engine = engine_with_accounts()
    run(engine, Deposit("t", "bob", "BTC", 200_000_000))
    events = engine.handle(limit("s", "bob", SELL, 150, 45_000))
    assert of_type(events, FundsHeld) == [FundsHeld("s", "bob", "BTC", 150 * SATS_PER_LOT, 0)]
    assert engine.balance("bob", "BTC") == (50_000_000, 150_000_000)


def test_an_order_that_cannot_be_covered_is_rejected_and_holds_nothing() -> None:
    engine = engine_with_accounts()
    run(engine, Deposit("t", "alice", "USD", 45_044))  # one lot at 45,000 needs 45,045
    assert engine.handle(limit("b", "alice", BUY, 1, 45_000)) == [
        OrderRejected("b", "alice", "BTC-USD", reasons.INSUFFICIENT_FUNDS, 0)
    ]
    assert engine.balance("alice", "USD") == (45_044, 0)
    assert engine.handle(limit("s", "bob", SELL, 1, 45_000)) == [
        OrderRejected("s", "bob", "BTC-USD", reasons.INSUFFICIENT_FUNDS, 0)
    ]


def test_a_stop_limit_holds_on_acceptance_and_a_stop_market_holds_nothing() -> None:
    engine = engine_with_accounts()
    run(engine, Deposit("t", "alice", "USD", 1_000_000))
    stop_limit = PlaceOrder(
        "sl", "alice", "BTC-USD", BUY, OrderType.STOP_LIMIT, 2, 500, stop_price=400
    )
    stop_market = PlaceOrder(
        "sm", "alice", "BTC-USD", BUY, OrderType.STOP_MARKET, 2, None, stop_price=400
    )
    assert of_type(engine.handle(stop_limit), FundsHeld) == [
        FundsHeld("sl", "alice", "USD", 2 * 501, 0)
    ]
    assert of_type(engine.handle(stop_market), FundsHeld) == []
    assert engine.balance("alice", "USD") == (1_000_000 - 1_002, 1_002)


# ------------------------------------------------------------------ settlement


def test_a_trade_settles_both_sides_and_the_fee_account_with_price_improvement() -> None:
    engine = engine_with_accounts()
    run(
        engine,
        Deposit("t1", "alice", "USD", 10_000_000),
        Deposit("t2", "bob", "BTC", 200_000_000),
        limit("s", "bob", SELL, 150, 44_000),
    )
    events = engine.handle(limit("b", "alice", BUY, 150, 45_000))
    # Trade at the maker's 44,000: notional 150 x 44,000 cents = $66,000.
    # Alice (taker) pays 10 bps = 6,600 cents; Bob (maker) 5 bps = 3,300 cents.
    assert of_type(events, TradeSettled) == [
        TradeSettled(
            "BTC-USD-1",
            "BTC-USD",
            "BTC",
            "USD",
            "alice",
            "bob",
            "b",
            "s",
            150 * SATS_PER_LOT,
            6_600_000,
            6_600,
            3_300,
            150 * 45_045,  # all alice held for the 150 lots
            150 * SATS_PER_LOT,
            0,
        )
    ]
    held = 150 * 45_045
    assert engine.balance("alice", "USD") == (10_000_000 - 6_600_000 - 6_600, 0)
    assert engine.balance("alice", "BTC") == (150 * SATS_PER_LOT, 0)
    assert held - 6_600_000 - 6_600 == 150_150  # the price improvement, back to available
    assert engine.balance("bob", "BTC") == (50_000_000, 0)
    assert engine.balance("bob", "USD") == (6_600_000 - 3_300, 0)
    assert engine.balance("venue-fees", "USD") == (9_900, 0)


def test_fees_are_rounded_up_to_the_quote_unit_on_each_fill() -> None:
    engine = engine_with_accounts()
    run(
        engine,
        Deposit("t1", "alice", "USD", 1_000_000),
        Deposit("t2", "bob", "BTC", SATS_PER_LOT),
        limit("s", "bob", SELL, 1, 45_001),
    )
    (settled,) = of_type(engine.handle(limit("b", "alice", BUY, 1, 45_001)), TradeSettled)
    assert isinstance(settled, TradeSettled)
    # 10 bps of 45,001 cents = 45.001 -> 46; 5 bps = 22.5005 -> 23.
    assert (settled.buyer_fee, settled.seller_fee) == (46, 23)
    assert engine.balance("venue-fees", "USD") == (69, 0)


def test_a_market_buy_pays_as_it_fills_and_stops_at_the_lot_it_cannot_pay() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(
        engine,
        Deposit("t1", "bob", "ETH", 10 * SATS_PER_LOT),
        limit("s1", "bob", SELL, 1, 100, instrument="ETH-USD"),
        limit("s2", "bob", SELL, 2, 200, instrument="ETH-USD"),
        Deposit("t2", "alice", "USD", 350),  # 100 + 200: the second lot at 200 is one too many
    )
    events = engine.handle(market("m", "alice", BUY, 3, instrument="ETH-USD"))
    settled = of_type(events, TradeSettled)
    assert [(s.base_amount, s.quote_amount, s.buyer_held_used) for s in settled] == [  # type: ignore[attr-defined]
        (SATS_PER_LOT, 100, 0),
        (SATS_PER_LOT, 200, 0),
    ]
    assert of_type(events, OrderCancelled) == [
        OrderCancelled("m", "ETH-USD", reasons.INSUFFICIENT_FUNDS, 1, 2, 0)
    ]
    assert engine.balance("alice", "USD") == (50, 0)
    assert engine.balance("alice", "ETH") == (2 * SATS_PER_LOT, 0)
    assert engine.book_levels("ETH-USD")[1] == [(200, 1, 1)]


def test_a_market_buy_with_a_taker_fee_pays_the_fee_from_available_too() -> None:
    engine = engine_with_accounts()
    run(
        engine,
        Deposit("t1", "bob", "BTC", 10 * SATS_PER_LOT),
        limit("s", "bob", SELL, 5, 1_000),
        Deposit("t2", "alice", "USD", 3_002),  # 3 lots cost 3,000 + ceil(3.0) = 3,003
    )
    events = engine.handle(market("m", "alice", BUY, 5))
    (settled,) = of_type(events, TradeSettled)
    assert isinstance(settled, TradeSettled)
    # 2 lots: 2,000 + 2 fee = 2,002; a third would cost 3,003 in all.
    assert (settled.base_amount, settled.quote_amount, settled.buyer_fee) == (
        2 * SATS_PER_LOT,
        2_000,
        2,
    )
    assert engine.balance("alice", "USD") == (1_000, 0)


def test_a_market_sell_delivers_only_the_base_it_has() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(
        engine,
        Deposit("t1", "alice", "USD", 100_000),
        limit("b", "alice", BUY, 5, 100, instrument="ETH-USD"),
        Deposit("t2", "bob", "ETH", 2 * SATS_PER_LOT),
    )
    events = engine.handle(market("m", "bob", SELL, 5, instrument="ETH-USD"))
    assert [s.base_amount for s in of_type(events, TradeSettled)] == [2 * SATS_PER_LOT]  # type: ignore[attr-defined]
    assert of_type(events, OrderCancelled) == [
        OrderCancelled("m", "ETH-USD", reasons.INSUFFICIENT_FUNDS, 3, 2, 0)
    ]
    assert engine.balance("bob", "USD") == (200, 0)


def test_a_market_fok_that_the_taker_cannot_pay_in_full_does_not_trade() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(
        engine,
        Deposit("t1", "bob", "ETH", 10 * SATS_PER_LOT),
        limit("s", "bob", SELL, 3, 100, instrument="ETH-USD"),
        Deposit("t2", "alice", "USD", 299),
    )
    events = engine.handle(
        market("m", "alice", BUY, 3, instrument="ETH-USD", time_in_force=TimeInForce.FOK)
    )
    assert of_type(events, TradeSettled) == []
    assert of_type(events, OrderCancelled) == [
        OrderCancelled("m", "ETH-USD", reasons.FOK_NOT_FILLABLE, 3, 0, 0)
    ]


# ------------------------------------------------------------------ releases and amends


def test_cancel_ioc_remainder_and_expiry_release_exactly_what_was_held() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(engine, Deposit("t", "alice", "USD", 100_000))
    run(engine, limit("b1", "alice", BUY, 3, 100, instrument="ETH-USD"))
    assert of_type(engine.handle(CancelOrder("b1")), FundsReleased) == [
        FundsReleased("b1", "alice", "USD", 300, 0)
    ]
    ioc = limit("b2", "alice", BUY, 4, 100, instrument="ETH-USD", time_in_force=TimeInForce.IOC)
    assert of_type(engine.handle(ioc), FundsReleased) == [
        FundsReleased("b2", "alice", "USD", 400, 0)
    ]
    gtd = limit(
        "b3",
        "alice",
        BUY,
        2,
        100,
        instrument="ETH-USD",
        time_in_force=TimeInForce.GTD,
        expire_time=10,
    )
    engine.handle(gtd)
    events = engine.handle(AdvanceTime(10))
    assert of_type(events, OrderExpired) and of_type(events, FundsReleased) == [
        FundsReleased("b3", "alice", "USD", 200, 10)
    ]
    assert engine.balance("alice", "USD") == (100_000, 0)


def test_an_amend_holds_the_difference_or_is_refused_and_leaves_the_order_as_it_was() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(
        engine,
        Deposit("t", "alice", "USD", 1_000),
        limit("b", "alice", BUY, 5, 100, instrument="ETH-USD"),
    )
    assert engine.handle(AmendOrder("b", quantity=11)) == [
        AmendRejected("b", "ETH-USD", reasons.INSUFFICIENT_FUNDS, 0)
    ]
    assert engine.balance("alice", "USD") == (500, 500)
    order = engine.open_order("b")
    assert order is not None and (order.quantity, order.price) == (5, 100)
    assert of_type(engine.handle(AmendOrder("b", quantity=10)), FundsHeld) == [
        FundsHeld("b", "alice", "USD", 500, 0)
    ]
    assert of_type(engine.handle(AmendOrder("b", price=40)), FundsReleased) == [
        FundsReleased("b", "alice", "USD", 600, 0)
    ]
    assert engine.balance("alice", "USD") == (600, 400)


def test_a_withdrawal_of_held_funds_is_refused_until_the_order_is_cancelled() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(
        engine,
        Deposit("t", "alice", "USD", 1_000),
        limit("b", "alice", BUY, 8, 100, instrument="ETH-USD"),
    )
    assert engine.handle(Withdraw("w1", "alice", "USD", 1_000)) == [
        TransferRejected("w1", "alice", "USD", 1_000, reasons.INSUFFICIENT_FUNDS, 0)
    ]
    engine.handle(CancelOrder("b"))
    assert engine.handle(Withdraw("w2", "alice", "USD", 1_000)) == [
        FundsWithdrawn("w2", "alice", "USD", 1_000, 0)
    ]


# ------------------------------------------------------------------ venue controls


def test_halted_and_cancel_only_instruments() -> None:
    engine = engine_with_accounts(NO_FEES)
    run(
        engine,
        Deposit("t", "alice", "USD", 10_000),
        limit("b1", "alice", BUY, 1, 100, instrument="ETH-USD"),
    )
    assert engine.handle(SetInstrumentStatus("ETH-USD", InstrumentStatus.HALTED)) == [
        InstrumentStatusChanged("ETH-USD", InstrumentStatus.HALTED, 0)
    ]
    assert engine.handle(limit("b2", "alice", BUY, 1, 100, instrument="ETH-USD")) == [
        OrderRejected("b2", "alice", "ETH-USD", reasons.INSTRUMENT_HALTED, 0)
    ]
    assert engine.handle(CancelOrder("b1")) == [
        CancelRejected("b1", "ETH-USD", reasons.INSTRUMENT_HALTED, 0)
    ]
    assert engine.handle(AmendOrder("b1", quantity=2)) == [
        AmendRejected("b1", "ETH-USD", reasons.INSTRUMENT_HALTED, 0)
    ]
    engine.handle(SetInstrumentStatus("ETH-USD", InstrumentStatus.CANCEL_ONLY))
    assert engine.instrument_status("ETH-USD") is InstrumentStatus.CANCEL_ONLY
    assert of_type(
        engine.handle(limit("b3", "alice", BUY, 1, 100, instrument="ETH-USD")), OrderRejected
    ) == [OrderRejected("b3", "alice", "ETH-USD", reasons.INSTRUMENT_HALTED, 0)]
    assert of_type(engine.handle(CancelOrder("b1")), OrderCancelled)
    engine.handle(SetInstrumentStatus("ETH-USD", InstrumentStatus.TRADING))
    assert of_type(
        engine.handle(limit("b4", "alice", BUY, 1, 100, instrument="ETH-USD")), OrderAccepted
    )
    assert engine.handle(SetInstrumentStatus("NOPE", InstrumentStatus.HALTED)) == [
        InstrumentRejected("NOPE", reasons.UNKNOWN_INSTRUMENT)
    ]


def test_venue_controls_work_with_accounts_off_too() -> None:
    engine = MatchingEngine([NO_FEES])
    engine.handle(SetInstrumentStatus("ETH-USD", InstrumentStatus.HALTED))
    assert engine.handle(limit("b", "alice", BUY, 1, 100, instrument="ETH-USD")) == [
        OrderRejected("b", "alice", "ETH-USD", reasons.INSTRUMENT_HALTED, 0)
    ]


def test_a_balance_beyond_a_64_bit_integer_survives_a_snapshot_through_json() -> None:
    import orjson

    engine = engine_with_accounts()
    for number in range(3):
        engine.handle(Deposit(f"t{number}", "whale", "USD", 2**62))
    restored = MatchingEngine.restore(orjson.loads(orjson.dumps(engine.snapshot())))
    assert restored.balance("whale", "USD") == (3 * 2**62, 0)
