"""Command handlers on the in-memory log: what a command appends, and what it refuses.

Given the orders in the log, when a command, then these request events (or this refusal
and nothing appended). The engine runner answers requests where a test needs an order to
be open or closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from server.commands import CommandHandlers, PlaceOrderInput
from server.errors import IdempotencyConflict, OrderClosed, OrderNotFound
from server.eventstore import EventStore, LogPosition
from server.log_contract.layout import order_stream


def sell(
    user_id: str = "alice", client_order_id: str | None = "s-1", **terms: Any
) -> PlaceOrderInput:
    fields: dict[str, Any] = {
        "side": "SELL",
        "type": "LIMIT",
        "quantity": "1.5",
        "price": "45000.00",
        **terms,
    }
    return PlaceOrderInput(
        user_id=user_id, instrument="BTC-USD", client_order_id=client_order_id, **fields
    )


async def stream_of(store: EventStore, order_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.data) for e in await store.read_stream(order_stream(order_id))]


async def test_placing_appends_the_normalised_request_to_a_new_order_stream(
    store: EventStore, handlers: CommandHandlers
) -> None:
    outcome = await handlers.place_order(sell(), metadata={"traceparent": "00-ab-cd-01"})

    order_id = outcome.order.order_id
    recorded = await store.read_stream(order_stream(order_id))
    assert [(e.type, e.data) for e in recorded] == [
        (
            "OrderPlaceRequested",
            {
                "op": "place",
                "order_id": order_id,
                "user_id": "alice",
                "instrument": "BTC-USD",
                "side": "SELL",
                "type": "LIMIT",
                "price": "45000.00",
                "stop_price": None,
                "quantity": "1.5000",
                "time_in_force": "GTC",
                "expire_time": None,
                "post_only": False,
                "max_slippage_bps": None,
                "stp": "CANCEL_NEWEST",
                "client_order_id": "s-1",
                "requested_at": "2026-01-01T00:00:00.000000Z",
            },
        )
    ]
    assert recorded[0].metadata == {"correlation_id": order_id, "traceparent": "00-ab-cd-01"}
    assert outcome.position == recorded[0].position and not outcome.duplicate
    assert (outcome.order.status, outcome.order.quantity, outcome.order.version) == (
        "PENDING",
        Decimal("1.5"),
        0,
    )


async def test_a_retry_with_the_same_terms_is_answered_with_the_original_order(
    store: EventStore, handlers: CommandHandlers
) -> None:
    original = await handlers.place_order(sell())

    retried = await handlers.place_order(sell())  # a second later: requested_at differs

    assert retried.duplicate
    assert retried.order.order_id == original.order.order_id
    assert retried.position == original.position
    assert [kind for kind, _ in await stream_of(store, original.order.order_id)] == [
        "OrderPlaceRequested"
    ]


@pytest.mark.parametrize(
    "other_terms",
    [{"price": "45000.01"}, {"quantity": "2"}, {"side": "BUY"}, {"time_in_force": "IOC"}],
)
async def test_a_retry_with_other_terms_is_an_idempotency_conflict(
    store: EventStore, handlers: CommandHandlers, other_terms: dict[str, Any]
) -> None:
    """The servicers answer it ALREADY_EXISTS."""
    original = await handlers.place_order(sell())
    head = await store.head_position()

    with pytest.raises(IdempotencyConflict):
        await handlers.place_order(sell(**other_terms))

    assert await store.head_position() == head
    assert len(await stream_of(store, original.order.order_id)) == 1


async def test_the_same_client_order_id_of_another_user_is_another_order(
    handlers: CommandHandlers,
) -> None:
    alices = await handlers.place_order(sell("alice"))
    bobs = await handlers.place_order(sell("bob"))
    assert alices.order.order_id != bobs.order.order_id
    assert not bobs.duplicate


async def test_cancelling_another_users_order_is_refused_and_appends_nothing(
    store: EventStore, handlers: CommandHandlers
) -> None:
    order_id = (await handlers.place_order(sell("alice"))).order.order_id
    placed = await stream_of(store, order_id)
    head = await store.head_position()

    # Another user's order is NOT_FOUND (issue 13: order ids cannot be probed).
    with pytest.raises(OrderNotFound):
        await handlers.cancel_order("bob", order_id)
    assert await store.head_position() == head

    cancelled = await handlers.cancel_order("alice", order_id)
    assert await stream_of(store, order_id) == [
        *placed,
        (
            "OrderCancelRequested",
            {
                "op": "cancel",
                "order_id": order_id,
                "user_id": "alice",
                "requested_at": "2026-01-01T00:00:01.000000Z",
            },
        ),
    ]
    assert cancelled.position == await store.head_position()


async def test_cancelling_an_unknown_order_is_refused(handlers: CommandHandlers) -> None:
    with pytest.raises(OrderNotFound):
        await handlers.cancel_order("alice", "no-such-order")


async def test_cancelling_a_closed_order_is_refused_and_appends_nothing(
    store: EventStore,
    handlers: CommandHandlers,
    run_engine: Callable[[LogPosition], Awaitable[object]],  # see conftest.py
) -> None:
    # An IOC buy with nothing to buy: the engine cancels its remainder at once.
    placed = await handlers.place_order(sell("bob", "b-1", side="BUY", time_in_force="IOC"))
    await run_engine(placed.position)
    order_id = placed.order.order_id
    assert [kind for kind, _ in await stream_of(store, order_id)] == [
        "OrderPlaceRequested",
        "OrderAccepted",
        "OrderCancelled",
    ]
    head = await store.head_position()

    with pytest.raises(OrderClosed) as refused:
        await handlers.cancel_order("bob", order_id)

    assert (refused.value.status, refused.value.order_status) == (
        "FAILED_PRECONDITION",
        "CANCELLED",
    )
    assert await store.head_position() == head
