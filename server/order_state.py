"""The write side's order-state lookup: one order's state, folded from its own stream.

Cancel and amend need the order's owner and whether it is closed, and an idempotent retry
returns the original order; all of that is in ``order-<id>`` (the request events and the
engine's results for that order), so the write side reads no view and never waits for one.
Field names are those of the proto ``Order`` (decimals as ``Decimal``, times aware UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from server.eventstore.port import EventStore, LogPosition, RecordedEvent
from server.streams import ORDER_PLACE_REQUESTED, order_stream, parse_time

PENDING = "PENDING"
OPEN = "OPEN"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"
EXPIRED = "EXPIRED"
TRIGGER_PENDING = "TRIGGER_PENDING"
CLOSED_STATUSES = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})
STOP_TYPES = frozenset({"STOP_LIMIT", "STOP_MARKET"})
FINAL_BY_EVENT = {"OrderRejected": REJECTED, "OrderCancelled": CANCELLED, "OrderExpired": EXPIRED}


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _time(value: Any) -> datetime | None:
    return parse_time(str(value)) if value else None


@dataclass
class OrderState:
    order_id: str
    client_order_id: str
    user_id: str
    instrument: str
    side: str
    type: str
    price: Decimal | None
    quantity: Decimal
    time_in_force: str
    stop_price: Decimal | None
    post_only: bool
    expire_time: datetime | None
    created_at: datetime
    updated_at: datetime
    placed_position: LogPosition
    status: str = PENDING
    reason: str = ""
    filled_quantity: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    version: int = 0
    fills: tuple[Any, ...] = field(default=())

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def average_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        return (self.filled_notional / self.filled_quantity).normalize()

    @classmethod
    def from_place_request(
        cls, order_id: str, data: Mapping[str, Any], position: LogPosition, version: int = 0
    ) -> OrderState:
        requested_at = _time(data.get("requested_at"))
        assert requested_at is not None
        return cls(
            order_id=order_id,
            client_order_id=str(data.get("client_order_id") or ""),
            user_id=str(data["user_id"]),
            instrument=str(data["instrument"]),
            side=str(data["side"]),
            type=str(data["type"]),
            price=_decimal(data.get("price")),
            quantity=Decimal(str(data["quantity"])),
            time_in_force=str(data.get("time_in_force") or "GTC"),
            stop_price=_decimal(data.get("stop_price")),
            post_only=bool(data.get("post_only")),
            expire_time=_time(data.get("expire_time")),
            created_at=requested_at,
            updated_at=requested_at,
            placed_position=position,
            version=version,
        )

    def apply(self, event: RecordedEvent) -> None:
        """Fold one later event of the order's stream into this state."""
        self.version = event.version
        data = event.data
        kind = event.type
        if kind.endswith("Requested"):
            return  # requests change nothing until the engine has handled them
        self.updated_at = event.recorded_at
        if kind == "OrderAccepted":
            if self.status == PENDING:
                self.status = TRIGGER_PENDING if self.type in STOP_TYPES else OPEN
        elif kind == "StopTriggered":
            if self.status == TRIGGER_PENDING:
                self.status = OPEN
        elif kind in ("OrderPartiallyFilled", "OrderFilled"):
            self._apply_fill(data)
            if kind == "OrderFilled":
                self.status = FILLED
            elif self.status not in CLOSED_STATUSES:
                self.status = PARTIALLY_FILLED
        elif kind in FINAL_BY_EVENT:
            self.status = FINAL_BY_EVENT[kind]
            self.reason = str(data.get("reason") or "")
        elif kind == "OrderAmended":
            quantity = _decimal(data.get("new_quantity", data.get("quantity")))
            price = _decimal(data.get("new_price", data.get("price")))
            if quantity is not None:
                self.quantity = quantity
            if price is not None:
                self.price = price

    def _apply_fill(self, data: Mapping[str, Any]) -> None:
        quantity = _decimal(data.get("fill_quantity", data.get("quantity")))
        price = _decimal(data.get("fill_price", data.get("price")))
        if quantity is None:
            return
        self.filled_quantity += quantity
        if price is not None:
            self.filled_notional += price * quantity


def fold_order(order_id: str, events: list[RecordedEvent]) -> OrderState | None:
    """The state an order's stream describes, or None when it holds no place request."""
    if not events or events[0].type != ORDER_PLACE_REQUESTED:
        return None
    first = events[0]
    state = OrderState.from_place_request(order_id, first.data, first.position, first.version)
    for event in events[1:]:
        state.apply(event)
    return state


async def load_order_state(event_store: EventStore, order_id: str) -> OrderState | None:
    events = await event_store.read_stream(order_stream(order_id))
    return fold_order(order_id, events)
