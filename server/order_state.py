"""The write side's order-state lookup: one order's state, folded from its own stream.

Cancel and amend need the order's owner and whether it is closed, and an idempotent retry
returns the original order; all of that is in ``order-<id>`` (the request events and the
engine's results for that order), so the write side reads no view and never waits for one.

The fold is the read side's (``projections.order_reducer.OrdersReducer``), so an order is
the same whichever path answers it: command responses, GetOrder, ListOrders and the order
update stream give identical fields, decimals and times included. A place just written is
answered from its record by the reducer's own first step (``placed_state``), not a fold.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.orders import CLOSED_STATUSES
from projections.order_reducer import OrdersReducer, placed_state
from projections.views import OrderView
from server.eventstore.port import EventStore, LogPosition, RecordedEvent
from server.log_contract.layout import ORDER_PLACE_REQUESTED, order_stream
from server.log_contract.records import OrderPlaceRequested


@dataclass(frozen=True, slots=True)
class OrderState(OrderView):
    """An order (every field of the proto `Order`), its stream's version and where it was
    placed in the log."""

    version: int = 0
    placed_position: LogPosition | None = None

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES


def placed_order(request: OrderPlaceRequested, position: LogPosition) -> OrderState:
    """The order a place request just written at `position` describes (PENDING): the
    read side's own first step (`placed_state`), with no stream to read or fold."""
    return placed_state(request).to_view(view_type=OrderState, version=0, placed_position=position)


def fold_order(order_id: str, events: list[RecordedEvent]) -> OrderState | None:
    """The state an order's stream describes, or None when it holds no place request."""
    if not events or events[0].type != ORDER_PLACE_REQUESTED:
        return None
    reducer = OrdersReducer(collect_updates=False)
    for event in events:
        reducer.apply(event)
    return reducer.orders[order_id].to_view(
        view_type=OrderState, version=events[-1].version, placed_position=events[0].position
    )


async def load_order_state(event_store: EventStore, order_id: str) -> OrderState | None:
    events = await event_store.read_stream(order_stream(order_id))
    return fold_order(order_id, events)
