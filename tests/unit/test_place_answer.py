"""The place path without I/O: its answer, and which field a request with several faults is
refused for.

- A place is answered from the record it writes (`placed_order`), not by folding the
  stream; the answer must still be what the read side's fold of that stream gives.
- The door validates the record with the engine runner's own translation; a request with
  several bad fields is refused for the first of them in the runner's order (quantity,
  price, expire_time, max_slippage_bps, stop_price), whether a field's text is unreadable
  or its number off the grid, and the refusal quotes the text the client sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from server.commands import CommandHandlers, PlaceOrderInput
from server.errors import InvalidArgument
from server.eventstore import LogPosition
from server.eventstore.port import RecordedEvent
from server.log_contract.layout import order_stream, parse_time
from server.order_state import OrderState, fold_order, placed_order
from tests.service.test_door_properties import INSTRUMENTS, NOW, place_requests

POSITION = LogPosition(7, 3)


def _handlers() -> CommandHandlers:
    return CommandHandlers(None, INSTRUMENTS, now=lambda: NOW)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=place_requests())
def test_the_answer_of_a_place_is_the_fold_of_the_stream_it_wrote(
    request: PlaceOrderInput,
) -> None:
    try:
        record, event = _handlers()._place_request(request, None)
    except InvalidArgument:
        return
    order_id = record.order_id
    written = RecordedEvent(
        event_id=event.event_id,
        stream=order_stream(order_id),
        version=0,
        position=POSITION,
        type=event.type,
        data=dict(event.data),
        metadata=dict(event.metadata),
        recorded_at=parse_time(event.data["requested_at"]),
    )
    folded = fold_order(order_id, [written])
    answered = placed_order(record, POSITION)
    assert answered == folded
    assert answered.status == "PENDING" and answered.version == 0


def _refusal(**fields: Any) -> tuple[str, str, str]:
    terms: dict[str, Any] = {
        "user_id": "alice",
        "instrument": "BTC-USD",
        "side": "BUY",
        "quantity": "1",
        **fields,
    }
    with pytest.raises(InvalidArgument) as refused:
        _handlers().place_request_event(PlaceOrderInput(**terms))
    violation = refused.value.violations[0]
    return violation.field, violation.reason, violation.description


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        # a number off the grid before an unreadable text: the number is refused
        ({"type": "LIMIT", "quantity": "0.00001", "price": "1e3"}, "quantity", "OFF_LOT_GRID"),
        (
            {"type": "STOP_LIMIT", "price": "0.001", "stop_price": "x"},
            "price",
            "OFF_TICK_GRID",
        ),
        # an unreadable text before a number off the grid: the text is refused
        ({"type": "STOP_LIMIT", "price": "+1", "stop_price": "0.001"}, "price", "MALFORMED"),
        (
            {"type": "STOP_MARKET", "time_in_force": "IOC", "stop_price": "x"},
            "stop_price",
            "MALFORMED",
        ),
        # what stands between price and stop_price comes before an unreadable stop_price
        (
            {
                "type": "STOP_MARKET",
                "time_in_force": "IOC",
                "stop_price": "x",
                "max_slippage_bps": 10**16,
            },
            "max_slippage_bps",
            "TOO_LARGE",
        ),
        (
            {
                "type": "STOP_LIMIT",
                "price": "1.00",
                "stop_price": "x",
                "time_in_force": "GTD",
                "expire_time": datetime(2300, 1, 1, tzinfo=UTC),
            },
            "expire_time",
            "OUT_OF_RANGE",
        ),
        # ... but not before an unreadable price
        (
            {
                "type": "LIMIT",
                "price": "x",
                "time_in_force": "GTD",
                "expire_time": datetime(2300, 1, 1, tzinfo=UTC),
            },
            "price",
            "MALFORMED",
        ),
    ],
)
def test_a_request_with_several_faults_is_refused_for_the_first_in_the_runners_order(
    fields: dict[str, Any], field: str, reason: str
) -> None:
    assert _refusal(**fields)[:2] == (field, reason)


def test_a_refused_number_is_quoted_as_it_was_sent() -> None:
    assert _refusal(type="MARKET", time_in_force="IOC", quantity="0") == (
        "quantity",
        "NOT_POSITIVE",
        "quantity '0' must be > 0",
    )
    assert _refusal(type="LIMIT", price="0.0000001") == (
        "price",
        "OFF_TICK_GRID",
        "price 0.0000001 is not a multiple of the tick size 0.01",
    )


def test_an_amend_refuses_the_quantity_before_an_unreadable_price() -> None:
    order = OrderState(
        order_id="o-1",
        client_order_id="",
        user_id="alice",
        instrument="BTC-USD",
        side="BUY",
        type="LIMIT",
        price=None,
        quantity=Decimal(1),
        filled_quantity=Decimal(0),
        average_price=None,
        status="OPEN",
        reason="",
        time_in_force="GTC",
        stop_price=None,
        post_only=False,
        expire_time=None,
        created_at=NOW,
        updated_at=NOW + timedelta(seconds=1),
    )
    with pytest.raises(InvalidArgument) as refused:
        _handlers()._amend_record(order, "alice", price="x", quantity="0.00001")
    assert (refused.value.violations[0].field, refused.value.violations[0].reason) == (
        "quantity",
        "OFF_LOT_GRID",
    )
