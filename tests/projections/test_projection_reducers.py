"""The pure reducers against the real engine: after random runs the derived views equal
the engine's own state (aggregated book = `book_levels`, order status and filled)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from projection_log import ScriptedLog, fold_book, random_commands

from projections.book_reducer import BooksReducer
from projections.order_reducer import OrdersReducer
from projections.views import BUY, SELL, BookUpdate

SEEDS = range(8)


def engine_status(log: ScriptedLog, order_id: str) -> str:
    status = log.engine.order_status(order_id)
    assert status is not None
    # The API shows a triggered stop like any live order.
    return "OPEN" if status.value == "TRIGGERED" else status.value


def engine_filled(log: ScriptedLog) -> dict[str, Decimal]:
    """Cumulative filled quantity per order, as the engine reported it."""
    filled: dict[str, Decimal] = {}
    for event in log.memory:
        if event.type in ("OrderFilled", "OrderPartiallyFilled", "OrderCancelled", "OrderExpired"):
            filled[event.data["order_id"]] = Decimal(event.data["filled_quantity"])
    return filled


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("inputs_per_append", [1, 25])
async def test_book_equals_engine_book_levels_after_random_run(
    seed: int, inputs_per_append: int
) -> None:
    log = ScriptedLog(None, inputs_per_append=inputs_per_append)
    await log.run(random_commands(seed, 600))
    reducer = BooksReducer()
    updates: list[BookUpdate] = []
    for event in log.memory:
        reducer.apply(event)
    updates.extend(reducer.take_changes().updates)
    # Replayed update by update, the book is never crossed: an incoming order is shown
    # resting only once its matching (its whole transaction) is over.
    for count in range(1, len(updates) + 1):
        (bids, asks), _ = fold_book(updates[:count])
        if bids and asks:
            assert bids[0].price < asks[0].price
    book = reducer.book("BTC-USD")
    assert (book.levels(BUY), book.levels(SELL)) == log.engine_levels("BTC-USD")
    # The updates replayed from nothing give the same book, with contiguous sequences.
    assert fold_book(updates)[0] == log.engine_levels("BTC-USD")
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    assert book.sequence == len(updates)
    last_trade = next(e for e in reversed(log.memory) if e.type == "TradeExecuted")
    assert book.last_price == Decimal(last_trade.data["price"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("inputs_per_append", [1, 25])
async def test_orders_equal_engine_status_and_filled_after_random_run(
    seed: int, inputs_per_append: int
) -> None:
    log = ScriptedLog(None, inputs_per_append=inputs_per_append)
    await log.run(random_commands(seed, 600))
    reducer = OrdersReducer()
    for event in log.memory:
        reducer.apply(event)
    batch = reducer.finish()
    filled = engine_filled(log)
    assert reducer.orders
    for order_id, state in reducer.orders.items():
        assert state.status == engine_status(log, order_id), order_id
        assert state.filled_quantity == filled.get(order_id, Decimal(0)), order_id
        if state.filled_quantity:
            fills = [f for f in batch.fills if f.order_id == order_id]
            assert all(f.fill.liquidity in ("MAKER", "TAKER") for f in fills)
            notional = sum(f.fill.price * f.fill.quantity for f in fills)
            assert state.average_price == notional / state.filled_quantity


async def test_batches_split_anywhere_give_the_same_orders() -> None:
    log = ScriptedLog(None)
    await log.run(random_commands(99, 300))
    whole = OrdersReducer()
    for event in log.memory:
        whole.apply(event)
    split = OrdersReducer()
    carried = {}
    for start in range(0, len(log.memory), 7):
        split = OrdersReducer(carried)
        for event in log.memory[start : start + 7]:
            split.apply(event)
        carried = split.orders
    assert {k: v.to_view() for k, v in carried.items()} == {
        k: v.to_view() for k, v in whole.orders.items()
    }
