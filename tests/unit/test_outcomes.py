"""Waiting for the engine's outcome of a request, on the in-memory log.

Given a request written by the command handlers, when the engine runner answers it, then
`OutcomeWaiter.wait` gives the order as the engine left it, the position of that answer
and, for a cancel the engine rejects, its reason; `wait_cancel_all` gives the orders a
cancel-all cancelled; with no engine, OutcomeNotYet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from server.commands import CommandHandlers, PlaceOrderInput
from server.engine_runner import EngineRunner
from server.eventstore import EventStore
from server.outcomes import OutcomeNotYet, OutcomeWaiter

RunEngine = Callable[..., Awaitable[EngineRunner]]


class ViewsCaughtUp:
    """Views that hold everything at once (the wait on them is the service tests' job)."""

    async def wait_for(self, position: Any, timeout: float | None) -> bool:
        return True


def limit(user_id: str, side: str, price: str, quantity: str) -> PlaceOrderInput:
    return PlaceOrderInput(
        user_id=user_id,
        instrument="BTC-USD",
        side=side,
        type="LIMIT",
        quantity=quantity,
        price=price,
    )


async def test_a_crossing_order_is_answered_filled_at_the_position_of_the_answer(
    store: EventStore, handlers: CommandHandlers, run_engine: RunEngine
) -> None:
    await handlers.place_order(limit("alice", "SELL", "100.00", "1.0"))
    taker = await handlers.place_order(limit("bob", "BUY", "101.00", "1.0"))
    await run_engine(taker.position)
    assert taker.request is not None

    outcome = await OutcomeWaiter(store, ViewsCaughtUp()).wait(taker.request, 5.0)

    assert (outcome.order.status, outcome.order.filled_quantity) == ("FILLED", Decimal("1"))
    assert outcome.position > taker.position
    assert outcome.rejection_reason is None


async def test_a_cancel_after_the_fill_is_answered_with_the_engines_rejection(
    store: EventStore, handlers: CommandHandlers, run_engine: RunEngine
) -> None:
    maker = await handlers.place_order(limit("alice", "SELL", "100.00", "1.0"))
    await handlers.place_order(limit("bob", "BUY", "100.00", "1.0"))
    cancel = await handlers.cancel_order("alice", maker.order.order_id)
    await run_engine(cancel.position)
    assert cancel.request is not None

    outcome = await OutcomeWaiter(store, ViewsCaughtUp()).wait(cancel.request, 5.0)

    assert (outcome.order.status, outcome.rejection_reason) == ("FILLED", "ORDER_CLOSED")


async def test_no_answer_in_time_is_outcome_not_yet(
    store: EventStore, handlers: CommandHandlers
) -> None:
    placed = await handlers.place_order(limit("alice", "BUY", "90.00", "1.0"))
    assert placed.request is not None

    with pytest.raises(OutcomeNotYet) as late:
        await OutcomeWaiter(store, ViewsCaughtUp()).wait(placed.request, 0.05)

    assert late.value.__cause__ is None and late.value.__context__ is None


async def test_a_cancel_all_is_answered_with_the_orders_it_cancelled(
    store: EventStore, handlers: CommandHandlers, run_engine: RunEngine
) -> None:
    first = await handlers.place_order(limit("kim", "BUY", "90.00", "1.0"))
    second = await handlers.place_order(limit("kim", "SELL", "110.00", "1.0"))
    await handlers.place_order(limit("lee", "BUY", "91.00", "1.0"))
    written = await handlers.cancel_all_orders("kim", None)
    await run_engine(written.position)

    outcome = await OutcomeWaiter(store, ViewsCaughtUp()).wait_cancel_all(
        written.position, written.event_id, 5.0
    )

    assert [(order.order_id, order.status, order.reason) for order in outcome.cancelled] == [
        (first.order.order_id, "CANCELLED", "MASS_CANCEL"),
        (second.order.order_id, "CANCELLED", "MASS_CANCEL"),
    ]
    assert outcome.position > written.position
