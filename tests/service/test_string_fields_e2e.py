"""Every string field of every request has a length cap at the door.

The requests are enumerated from the service descriptors (a new RPC or a new string field is
covered without editing this file). Each string field in turn gets a value one character
longer than the longest identifier (of characters that field otherwise takes), the rest of
the request being valid, and the call must end INVALID_ARGUMENT with a violation naming that
field: in the status (google.rpc.BadRequest), or in StreamPlaceOrders' answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from rpc_methods import exchange_methods
from service_harness import Exchange
from service_helpers import BUY, field_violations, limit, place

from domain.input_rules import MAX_ID_LENGTH

# A valid value for each string field, by name; a field not named here is left empty.
VALID_TEXT = {
    "user_id": "alice",
    "instrument": "BTC-USD",
    "price": "100",
    "quantity": "1",
    "client_order_id": "c-1",
    "asset": "USD",
    "amount": "1",
    "transfer_id": "t-1",
}
# Valid enum values, by field name (PlaceOrder's terms).
VALID_ENUMS = {
    "side": "SIDE_BUY",
    "type": "ORDER_TYPE_LIMIT",
    "time_in_force": "TIME_IN_FORCE_GTC",
    "status": "INSTRUMENT_STATUS_TRADING",
}
# Fields holding digits (decimals, log positions): their long value is digits, so it is
# refused for its length, not its shape.
DIGIT_FIELDS = frozenset(
    {"price", "quantity", "stop_price", "min_position", "after_position", "amount"}
)
LONG = MAX_ID_LENGTH + 1


def _string_paths(descriptor: Descriptor, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of every string field of a message, nested messages included."""
    paths: list[tuple[str, ...]] = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            paths.append((*prefix, field.name))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.fields:
            if field.message_type.full_name.startswith("google.protobuf."):
                continue
            paths.extend(_string_paths(field.message_type, (*prefix, field.name)))
    return paths


def _valid(descriptor: Descriptor, order_id: str) -> Any:
    """A valid request (`order_id`: an open order of alice's, so amending it gets as far as
    checking its new terms)."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING and field.name == "order_id":
            message.order_id = order_id
        elif field.type == FieldDescriptor.TYPE_STRING and field.name in VALID_TEXT:
            setattr(message, field.name, VALID_TEXT[field.name])
        elif (
            field.type == FieldDescriptor.TYPE_ENUM
            and VALID_ENUMS.get(field.name) in field.enum_type.values_by_name
        ):
            setattr(
                message, field.name, field.enum_type.values_by_name[VALID_ENUMS[field.name]].number
            )
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.name == "order":
            getattr(message, field.name).CopyFrom(_valid(field.message_type, order_id))
    return message


def _with_long(message: Any, path: tuple[str, ...]) -> Any:
    target = message
    for name in path[:-1]:
        target = getattr(target, name)
    setattr(target, path[-1], ("1" if path[-1] in DIGIT_FIELDS else "x") * LONG)
    return message


CASES = [
    pytest.param(service, method, path, id=f"{method.name}.{'.'.join(path)}")
    for service, method in exchange_methods()
    for path in _string_paths(method.input_type)
]


def test_the_cases_cover_the_requests_string_fields() -> None:
    names = {case.id for case in CASES}
    assert "PlaceOrder.client_order_id" in names
    assert "StreamPlaceOrders.order.client_order_id" in names
    assert "ListTrades.page_token" in names


async def _one(request: Any) -> AsyncIterator[Any]:
    yield request


async def _violations(
    exchange: Exchange, service: str, method: MethodDescriptor, request: Any
) -> tuple[bool, list[str]]:
    """(refused as INVALID_ARGUMENT, the fields named) of one call."""
    path = f"/{service}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    common = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response_class.FromString,
    }
    channel = exchange.channel
    try:
        if method.client_streaming and method.server_streaming:
            call = channel.stream_stream(path, **common)(_one(request), timeout=30)
            answer = await call.read()
            if answer.HasField("error"):
                fields = [violation.field for violation in answer.error.field_violations]
                return grpc.StatusCode.INVALID_ARGUMENT.value[0] == answer.error.code, fields
            return False, ["answered without error"]
        if method.server_streaming:
            call = channel.unary_stream(path, **common)(request, timeout=30)
            await call.read()
            return False, ["streamed"]
        await channel.unary_unary(path, **common)(request, timeout=30)
        return False, ["answered"]
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
            return False, [f"{error.code().name}: {error.details()}"]
        return True, [field for field, _reason in field_violations(error)]


@pytest.mark.parametrize(("service", "method", "path"), CASES)
async def test_every_string_field_of_every_request_is_capped_at_the_door(
    exchange: Exchange, service: str, method: MethodDescriptor, path: tuple[str, ...]
) -> None:
    resting = await place(exchange, limit("alice", BUY, "100", "1", client_order_id="resting"))
    await exchange.settle(resting.position)
    request = _with_long(_valid(method.input_type, resting.order.order_id), path)
    refused, fields = await _violations(exchange, service, method, request)
    assert refused, fields
    assert path[-1] in fields
