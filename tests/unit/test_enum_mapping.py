"""The proto's enums and the domain's are one vocabulary: a value added to one side and
not the other fails here (the servicers map between them by name, in convert.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest

from clients.generated.exchange.v1 import types_pb2
from domain.orders import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from projections import order_reducer
from server.servicers import convert


def _proto_names(enum: Any, prefix: str) -> set[str]:
    return {
        name[len(prefix) :]
        for name in enum.DESCRIPTOR.values_by_name
        if not name.endswith("_UNSPECIFIED")
    }


@pytest.mark.parametrize(
    ("proto_enum", "prefix", "domain_enum"),
    [
        (types_pb2.Side, "SIDE_", Side),
        (types_pb2.OrderType, "ORDER_TYPE_", OrderType),
        (types_pb2.TimeInForce, "TIME_IN_FORCE_", TimeInForce),
        (types_pb2.SelfTradePrevention, "SELF_TRADE_PREVENTION_", SelfTradePrevention),
    ],
)
def test_proto_and_domain_enums_hold_the_same_names(
    proto_enum: Any, prefix: str, domain_enum: type[StrEnum]
) -> None:
    assert _proto_names(proto_enum, prefix) == {member.value for member in domain_enum}


def test_every_order_status_reaches_the_wire() -> None:
    # TRIGGERED is the engine's inner state of a stop that has fired: the API shows OPEN.
    shown = {status.value for status in OrderStatus} - {"TRIGGERED"}
    assert _proto_names(types_pb2.OrderStatus, "ORDER_STATUS_") == shown
    assert set(convert.STATUS_VALUES) == {status.value for status in OrderStatus}
    assert convert.STATUS_VALUES["TRIGGERED"] == types_pb2.ORDER_STATUS_OPEN


def test_the_views_statuses_are_the_domains() -> None:
    names = (
        "PENDING",
        "OPEN",
        "PARTIALLY_FILLED",
        "FILLED",
        "CANCELLED",
        "REJECTED",
        "EXPIRED",
        "TRIGGER_PENDING",
    )
    assert {getattr(order_reducer, name) for name in names} <= {s.value for s in OrderStatus}
