"""The CLI shows amounts at their instrument's precision: prices at the tick's decimals,
quantities at the lot's, average prices at the tick's plus two (rounded half-even)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from canned_exchange import CannedExchange
from cli_runs import run_json, run_text

from clients.enums import OrderStatus, OrderType, Side, TimeInForce
from clients.models import (
    BookSnapshot,
    BookUpdate,
    Instrument,
    LevelChange,
    Order,
    OrderBook,
    PriceLevel,
    Trade,
)
from clients.precision import DisplayPrecision, decimal_places

BTC_USD = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"), None)
COARSE = Instrument("COARSE", Decimal("5"), Decimal("0.5"), None)
PRECISION = DisplayPrecision([BTC_USD, COARSE])


def _order(instrument: str = "BTC-USD", **amounts: str | None) -> Order:
    values: dict[str, str | None] = {
        "price": "45000",
        "quantity": "1",
        "filled_quantity": "0",
        "average_price": None,
        "stop_price": None,
    }
    values.update(amounts)
    return Order(
        order_id="o-1",
        client_order_id="",
        user_id="alice",
        instrument=instrument,
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=None if values["price"] is None else Decimal(values["price"]),
        quantity=Decimal(str(values["quantity"])),
        filled_quantity=Decimal(str(values["filled_quantity"])),
        average_price=(
            None if values["average_price"] is None else Decimal(values["average_price"])
        ),
        status=OrderStatus.OPEN,
        reason="",
        time_in_force=TimeInForce.GTC,
        created_at=None,
        updated_at=None,
        stop_price=None if values["stop_price"] is None else Decimal(values["stop_price"]),
        post_only=False,
        expire_time=None,
    )


def _shown(order: Order) -> tuple[str, ...]:
    shown = PRECISION.apply(order)
    return tuple(
        "" if value is None else format(value, "f")
        for value in (
            shown.price,
            shown.quantity,
            shown.filled_quantity,
            shown.average_price,
            shown.stop_price,
        )
    )


@pytest.mark.parametrize(
    ("step", "places"),
    [("0.01", 2), ("0.0001", 4), ("0.010", 2), ("0.5", 1), ("5", 0), ("1E+1", 0), ("1", 0)],
)
def test_decimal_places_of_a_grid_step(step: str, places: int) -> None:
    assert decimal_places(Decimal(step)) == places


def test_quantities_at_the_lot_precision_prices_at_the_tick_precision() -> None:
    order = _order(price="45000", quantity="1", filled_quantity="0", stop_price="44000.5")
    assert _shown(order) == ("45000.00", "1.0000", "0.0000", "", "44000.50")
    order = _order(price="45000.000000", quantity="1.50000000", filled_quantity="0.5")
    assert _shown(order) == ("45000.00", "1.5000", "0.5000", "", "")
    coarse = _order("COARSE", price="45000", quantity="2", filled_quantity="1.0")
    assert _shown(coarse) == ("45000", "2.0", "1.0", "", "")


@pytest.mark.parametrize(
    ("average", "shown"),
    [
        ("45000", "45000.0000"),
        ("45000.005", "45000.0050"),
        # What the views compute for 1/3 and 2/3 of a lot at two prices: 29 digits.
        ("45000.003333333333333333333333", "45000.0033"),
        ("45000.006666666666666666666667", "45000.0067"),
        # Half-even: a 5 after the last shown digit goes to the even neighbour.
        ("45000.00125", "45000.0012"),
        ("45000.00135", "45000.0014"),
    ],
)
def test_average_price_at_the_tick_precision_plus_two_digits(average: str, shown: str) -> None:
    assert _shown(_order(average_price=average))[3] == shown


def test_off_grid_amounts_and_unknown_instruments_are_shown_as_sent() -> None:
    # Never rounded into a different value: off the lot grid stays as it came.
    assert _shown(_order(quantity="1.00005", price="45000.001")) == (
        "45000.001",
        "1.00005",
        "0.0000",
        "",
        "",
    )
    unknown = _order("XRP-USD", price="0.5", quantity="10", filled_quantity="0")
    assert PRECISION.apply(unknown) is unknown


def test_books_and_trades_at_the_instrument_precision() -> None:
    book = OrderBook(
        "BTC-USD",
        bids=(PriceLevel(Decimal("44999.5"), Decimal("3"), 1),),
        asks=(PriceLevel(Decimal("45001"), Decimal("0.0001"), 1),),
        sequence=4,
        last_price=Decimal("45000"),
    )
    shown_book = PRECISION.apply(book)
    assert [
        (format(level.price, "f"), format(level.quantity, "f"))
        for level in shown_book.bids + shown_book.asks
    ] == [("44999.50", "3.0000"), ("45001.00", "0.0001")]
    assert format(shown_book.last_price, "f") == "45000.00"
    snapshot = PRECISION.apply(
        BookSnapshot("BTC-USD", 1, (PriceLevel(Decimal("1"), Decimal("2"), 1),), (), "p")
    )
    assert (format(snapshot.bids[0].price, "f"), format(snapshot.bids[0].quantity, "f")) == (
        "1.00",
        "2.0000",
    )
    update = PRECISION.apply(
        BookUpdate("BTC-USD", 2, (LevelChange(Side.SELL, Decimal("1"), Decimal("0"), 0),), "p")
    )
    change = update.changes[0]
    assert (format(change.price, "f"), format(change.quantity, "f")) == ("1.00", "0.0000")
    trade = PRECISION.apply(
        Trade("t", "BTC-USD", Decimal("45000"), Decimal("1"), "m", "k", Side.BUY, None)
    )
    assert (format(trade.price, "f"), format(trade.quantity, "f")) == ("45000.00", "1.0000")


# --- through the CLI ------------------------------------------------------------------------


async def test_cli_shows_filled_and_average_at_the_instrument_precision(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    # The canned order is a BTC-USD buy: quantity "1.5000", filled "0.5", average "44999.50".
    status, out, _ = await run_text(canned_exchange.target, capsys, "get", "o-8")
    assert status == 0
    assert [line for line in out if line.split()[0].endswith(("quantity", "price"))] == [
        "price            45000.00",
        "quantity         1.5000",
        "filled_quantity  0.5000",
        "average_price    44999.5000",
    ]
    status, [order], _ = await run_json(canned_exchange.target, capsys, "get", "o-8")
    assert (order["quantity"], order["filled_quantity"], order["average_price"]) == (
        "1.5000",
        "0.5000",
        "44999.5000",
    )


async def test_cli_book_levels_at_the_instrument_precision(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = await run_text(canned_exchange.target, capsys, "book", "BTC-USD")
    assert (status, out) == (
        0,
        [
            "BTC-USD",
            "┏━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━┓",
            "┃ orders ┃ bid qty ┃      bid ┃      ask ┃ ask qty ┃ orders ┃",
            "┡━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━┩",
            "│      2 │  1.2500 │ 44999.50 │ 45001.00 │  0.0001 │      1 │",
            "│      1 │  3.0000 │ 44990.00 │          │         │        │",
            "└────────┴─────────┴──────────┴──────────┴─────────┴────────┘",
            "last 45000.00, sequence 42",
        ],
    )
