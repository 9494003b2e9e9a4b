"""Python enums of the API's protobuf enums, and their exact mapping to the wire values.

Each member's value is the protobuf value name without its enum prefix (`Side.BUY` is
`SIDE_BUY` on the wire), so the mapping is derived from the names and cannot drift. Values
this client does not know (a newer server) decode to `UNSPECIFIED` instead of failing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from google.protobuf.descriptor import EnumDescriptor

from clients.generated.exchange.v1 import admin_service_pb2, types_pb2


class Side(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    STOP_MARKET = "STOP_MARKET"


class TimeInForce(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"


class OrderStatus(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    TRIGGER_PENDING = "TRIGGER_PENDING"

    @property
    def is_final(self) -> bool:
        """True once the order can no longer change (nothing rests, nothing waits)."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class SelfTradePrevention(StrEnum):
    """UNSPECIFIED is treated by the service as CANCEL_NEWEST."""

    UNSPECIFIED = "UNSPECIFIED"
    CANCEL_NEWEST = "CANCEL_NEWEST"
    CANCEL_OLDEST = "CANCEL_OLDEST"
    CANCEL_BOTH = "CANCEL_BOTH"
    NONE = "NONE"


class Scope(StrEnum):
    """What an API key may do: READ (its account's data and market data), TRADE (orders
    of its account; implies READ), ADMIN (AdminService, every account's data; implies
    READ)."""

    UNSPECIFIED = "UNSPECIFIED"
    READ = "READ"
    TRADE = "TRADE"
    ADMIN = "ADMIN"


_WIRE_ENUMS: dict[type[StrEnum], tuple[EnumDescriptor, str]] = {
    Side: (types_pb2.DESCRIPTOR.enum_types_by_name["Side"], "SIDE_"),
    OrderType: (types_pb2.DESCRIPTOR.enum_types_by_name["OrderType"], "ORDER_TYPE_"),
    TimeInForce: (types_pb2.DESCRIPTOR.enum_types_by_name["TimeInForce"], "TIME_IN_FORCE_"),
    OrderStatus: (types_pb2.DESCRIPTOR.enum_types_by_name["OrderStatus"], "ORDER_STATUS_"),
    SelfTradePrevention: (
        types_pb2.DESCRIPTOR.enum_types_by_name["SelfTradePrevention"],
        "SELF_TRADE_PREVENTION_",
    ),
    Scope: (admin_service_pb2.DESCRIPTOR.enum_types_by_name["Scope"], "SCOPE_"),
}

EnumT = TypeVar("EnumT", bound=StrEnum)


def to_wire(member: StrEnum) -> int:
    """The protobuf number of `member`, e.g. `to_wire(Side.BUY) == types_pb2.SIDE_BUY`."""
    descriptor, prefix = _WIRE_ENUMS[type(member)]
    return int(descriptor.values_by_name[prefix + member.value].number)


def from_wire(enum_type: type[EnumT], number: int) -> EnumT:
    """The member of `enum_type` for a protobuf number; unknown numbers give UNSPECIFIED."""
    descriptor, prefix = _WIRE_ENUMS[enum_type]
    wire_value = descriptor.values_by_number.get(number)
    if wire_value is None:
        return enum_type("UNSPECIFIED")
    return enum_type(wire_value.name.removeprefix(prefix))


def parse_member(enum_type: type[EnumT], text: str) -> EnumT:
    """A member from user text, case-insensitive, with or without the wire prefix:
    "buy", "BUY" and "SIDE_BUY" all give Side.BUY. Raises ValueError listing the choices."""
    _, prefix = _WIRE_ENUMS[enum_type]
    name = text.strip().upper().replace("-", "_").removeprefix(prefix)
    try:
        member = enum_type(name)
    except ValueError:
        member = None
    if member is None or member.value == "UNSPECIFIED":
        choices = ", ".join(m.value for m in enum_type if m.value != "UNSPECIFIED")
        raise ValueError(f"{text!r} is not one of {choices}")
    return member
