"""Exact conversions of the Python client: amounts, enums, times, messages, JSON rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import grpc
import pytest
from canned_exchange import canned_order, timestamp

from clients.conversions import (
    datetime_from_wire,
    datetime_to_wire,
    decimal_from_wire,
    decimal_to_wire,
    new_order_to_wire,
    order_from_wire,
    parse_decimal,
)
from clients.enums import (
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    from_wire,
    parse_member,
    to_wire,
)
from clients.errors import (
    ExchangeError,
    FieldViolation,
    InvalidArgumentError,
    ResourceExhaustedError,
    error_from_command_error,
    make_error,
    status_code_from_number,
)
from clients.generated.exchange.v1 import types_pb2
from clients.loadgen import LoadPlan, generate_orders, percentile
from clients.models import NewOrder
from clients.render import json_line, to_json_value

# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("45000.00"), "45000.00"),
        (Decimal("0.0001"), "0.0001"),
        (Decimal("1E+3"), "1000"),
        (Decimal("1.50E-5"), "0.0000150"),
        (7, "7"),
        (None, ""),
        (" 1.50 ", "1.50"),
        ("1.2.3", "1.2.3"),  # strings go as typed: the service names field and reason
    ],
)
def test_decimal_to_wire_never_rounds_or_uses_exponents(
    value: Decimal | int | str | None, wire: str
) -> None:
    assert decimal_to_wire(value) == wire


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="not float"):
        decimal_to_wire(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "-inf", ""])
def test_parse_decimal_refuses_non_finite_and_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_decimal(text)


def test_decimal_from_wire_keeps_scale_and_maps_empty_to_none() -> None:
    assert str(decimal_from_wire("45000.00")) == "45000.00"
    assert decimal_from_wire("") is None


# --- enums -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "number"),
    [
        (Side.BUY, types_pb2.SIDE_BUY),
        (Side.SELL, types_pb2.SIDE_SELL),
        (OrderType.STOP_MARKET, types_pb2.ORDER_TYPE_STOP_MARKET),
        (TimeInForce.FOK, types_pb2.TIME_IN_FORCE_FOK),
        (TimeInForce.GTD, types_pb2.TIME_IN_FORCE_GTD),
        (OrderStatus.TRIGGER_PENDING, types_pb2.ORDER_STATUS_TRIGGER_PENDING),
        (OrderStatus.EXPIRED, types_pb2.ORDER_STATUS_EXPIRED),
        (SelfTradePrevention.NONE, types_pb2.SELF_TRADE_PREVENTION_NONE),
        (SelfTradePrevention.UNSPECIFIED, types_pb2.SELF_TRADE_PREVENTION_UNSPECIFIED),
    ],
)
def test_enum_members_map_both_ways(member: Side, number: int) -> None:
    assert to_wire(member) == number
    assert from_wire(type(member), number) is member


def test_every_wire_value_has_a_member() -> None:
    for enum_type, wire_enum in [
        (Side, types_pb2.Side),
        (OrderType, types_pb2.OrderType),
        (TimeInForce, types_pb2.TimeInForce),
        (OrderStatus, types_pb2.OrderStatus),
        (SelfTradePrevention, types_pb2.SelfTradePrevention),
    ]:
        numbers = list(wire_enum.values())
        assert [to_wire(from_wire(enum_type, n)) for n in numbers] == numbers  # type: ignore[arg-type]
        assert len(enum_type) == len(numbers)  # type: ignore[arg-type]


def test_unknown_wire_number_decodes_to_unspecified() -> None:
    assert from_wire(OrderStatus, 999) is OrderStatus.UNSPECIFIED


@pytest.mark.parametrize("text", ["buy", "BUY", "SIDE_BUY", " Buy "])
def test_parse_member_accepts_short_and_wire_names(text: str) -> None:
    assert parse_member(Side, text) is Side.BUY


def test_parse_member_refuses_unspecified_and_unknown() -> None:
    with pytest.raises(ValueError, match="not one of GTC, IOC, FOK, GTD"):
        parse_member(TimeInForce, "unspecified")
    with pytest.raises(ValueError, match="not one of"):
        parse_member(Side, "long")


def test_final_statuses() -> None:
    finals = {status for status in OrderStatus if status.is_final}
    assert finals == {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }


# --- times -----------------------------------------------------------------------------------


def test_datetimes_round_trip_as_utc() -> None:
    paris_winter = timezone(timedelta(hours=1))
    moment = datetime(2026, 1, 1, 1, 0, 5, 250000, tzinfo=paris_winter)
    wire = datetime_to_wire(moment)
    assert (wire.seconds, wire.nanos) == (1767225605, 250000000)
    back = datetime_from_wire(wire)
    assert back == moment
    assert back.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        datetime_to_wire(datetime(2026, 1, 1))


# --- messages --------------------------------------------------------------------------------


def test_new_order_leaves_optional_fields_unset() -> None:
    request = new_order_to_wire(
        NewOrder(user_id="u", instrument="BTC-USD", side=Side.BUY, quantity=Decimal("1"))
    )
    assert request.price == "" and request.stop_price == ""
    assert not request.HasField("expire_time")
    assert request.type == types_pb2.ORDER_TYPE_LIMIT
    assert request.time_in_force == types_pb2.TIME_IN_FORCE_GTC
    assert request.stp == types_pb2.SELF_TRADE_PREVENTION_UNSPECIFIED


def test_order_from_wire_unset_times_and_amounts() -> None:
    message = canned_order(average_price="", price="")
    message.ClearField("updated_at")
    order = order_from_wire(message)
    assert order.price is None
    assert order.average_price is None
    assert order.updated_at is None
    assert order.created_at == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_order_from_wire_expire_time() -> None:
    expiry = datetime(2026, 2, 1, tzinfo=UTC)
    message = canned_order(time_in_force=types_pb2.TIME_IN_FORCE_GTD, expire_time=timestamp(expiry))
    order = order_from_wire(message)
    assert (order.time_in_force, order.expire_time) == (TimeInForce.GTD, expiry)


# --- errors ----------------------------------------------------------------------------------


def test_status_numbers_map_to_codes() -> None:
    assert status_code_from_number(3) is grpc.StatusCode.INVALID_ARGUMENT
    assert status_code_from_number(9) is grpc.StatusCode.FAILED_PRECONDITION
    assert status_code_from_number(12345) is grpc.StatusCode.UNKNOWN


def test_in_stream_command_error_decodes_to_typed_exception() -> None:
    error = error_from_command_error(
        types_pb2.CommandError(
            code=3,
            message="bad order",
            field_violations=[
                types_pb2.FieldViolation(
                    field="quantity", description="below min", reason="TOO_SMALL"
                )
            ],
        )
    )
    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations == (FieldViolation("quantity", "below min", "TOO_SMALL"),)


def test_unmapped_codes_give_the_base_error() -> None:
    error = make_error(grpc.StatusCode.DATA_LOSS, "slow down")
    assert type(error) is ExchangeError
    assert str(error) == "DATA_LOSS: slow down"


def test_the_limits_code_has_its_own_error() -> None:
    error = make_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    assert type(error) is ResourceExhaustedError
    assert str(error) == "RESOURCE_EXHAUSTED: slow down"


# --- rendering -------------------------------------------------------------------------------


def test_json_rendering_keeps_decimal_text_and_utc_z() -> None:
    order = order_from_wire(canned_order())
    rendered = to_json_value(order)
    assert rendered["quantity"] == "1.5000"
    assert rendered["side"] == "BUY"
    assert rendered["created_at"] == "2026-01-02T03:04:05.123456Z"
    assert rendered["expire_time"] is None
    assert json_line({"at": datetime(2026, 1, 1, tzinfo=UTC)}) == '{"at":"2026-01-01T00:00:00Z"}'


# --- load generator --------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) == 0.0


def test_generated_orders_are_seeded_and_on_grid() -> None:
    plan = LoadPlan(target="x", orders=200, concurrency=1, users=3, seed=5)
    orders = generate_orders(plan, Decimal("0.01"), Decimal("0.0001"))
    assert orders == generate_orders(plan, Decimal("0.01"), Decimal("0.0001"))
    assert orders != generate_orders(
        LoadPlan(target="x", orders=200, concurrency=1, users=3, seed=6),
        Decimal("0.01"),
        Decimal("0.0001"),
    )
    assert {order.user_id for order in orders} == {"load-user-0", "load-user-1", "load-user-2"}
    assert {order.side for order in orders} == {Side.BUY, Side.SELL}
    for order in orders:
        assert isinstance(order.price, Decimal) and isinstance(order.quantity, Decimal)
        assert order.price % Decimal("0.01") == 0
        assert abs(order.price - Decimal("50000")) <= Decimal("0.20")
        assert order.quantity % Decimal("0.0001") == 0
        assert Decimal("0.0001") <= order.quantity <= Decimal("0.0010")
