"""Pure reducer of the orders-and-trades view: events in, order states and new rows out.

`OrdersReducer` holds the states of the orders a batch touches (loaded by the PostgreSQL
builder before the batch) and applies events one by one, recording what to write: new and
changed orders, new fills, new trades, and one `OrderUpdate` per order change for the live
feed. No I/O here, so the view's rules are tested with events alone.

Rules:
- `OrderPlaceRequested` creates the order, status PENDING.
- Fills come from `OrderPartiallyFilled` / `OrderFilled`, which stand in the order's own
  stream, in order with everything else about it; `TradeExecuted` (another stream of the
  same atomic append, before or after them) makes the trade rows and tells each fill
  maker from taker when the batch is finished.
- `TradeSettled` (accounts on) adds each side's fee to its trade row.
- Status is derived, not copied: a final event (rejected, cancelled, expired) wins; else
  FILLED when the filled quantity reaches the quantity, PARTIALLY_FILLED when some is
  filled, else the stage (PENDING, then OPEN, or TRIGGER_PENDING for a waiting stop).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from domain.orders import OrderStatus, OrderType
from projections.log_events import (
    LogEvent,
    order_id_of,
    position_token,
    record_of,
    trade_view,
)
from projections.views import FillView, OrderUpdate, OrderView, TradeView
from server.log_contract import records as rec

PENDING = OrderStatus.PENDING.value
OPEN = OrderStatus.OPEN.value
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED.value
FILLED = OrderStatus.FILLED.value
CANCELLED = OrderStatus.CANCELLED.value
REJECTED = OrderStatus.REJECTED.value
EXPIRED = OrderStatus.EXPIRED.value
TRIGGER_PENDING = OrderStatus.TRIGGER_PENDING.value

STOP_TYPES = frozenset({OrderType.STOP_LIMIT.value, OrderType.STOP_MARKET.value})
View = TypeVar("View", bound=OrderView)

MAKER = "MAKER"
TAKER = "TAKER"


@dataclass
class OrderState:
    """One order's row in the view, mutable while a batch is reduced."""

    order_id: str
    client_order_id: str = ""
    user_id: str = ""
    instrument: str = ""
    side: str = ""
    type: str = ""
    price: Decimal | None = None
    quantity: Decimal = Decimal(0)
    filled_quantity: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    stage: str = PENDING
    final_status: str | None = None
    reason: str = ""
    time_in_force: str = ""
    stop_price: Decimal | None = None
    post_only: bool = False
    expire_time: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.final_status is not None:
            return self.final_status
        if self.quantity > 0 and self.filled_quantity >= self.quantity:
            return FILLED
        if self.filled_quantity > 0:
            return PARTIALLY_FILLED
        return self.stage

    @property
    def average_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return average(self.filled_notional, self.filled_quantity)

    def to_view(
        self,
        fills: tuple[FillView, ...] = (),
        # builtins.type: the class's own `type` field shadows it here.
        view_type: builtins.type[View] = OrderView,  # type: ignore[assignment]
        **extra: Any,
    ) -> View:
        """The order as `view_type` (an `OrderView` or a subclass, whose own fields come in
        `extra`): built once, not copied field by field."""
        created_at = self.created_at or self.updated_at
        assert created_at is not None
        return view_type(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            user_id=self.user_id,
            instrument=self.instrument,
            side=self.side,
            type=self.type,
            price=self.price,
            quantity=self.quantity,
            filled_quantity=self.filled_quantity,
            average_price=self.average_price,
            status=self.status,
            reason=self.reason,
            time_in_force=self.time_in_force,
            stop_price=self.stop_price,
            post_only=self.post_only,
            expire_time=self.expire_time,
            created_at=created_at,
            updated_at=self.updated_at or created_at,
            fills=fills,
            **extra,
        )


def average(notional: Decimal, quantity: Decimal) -> Decimal:
    """Volume-weighted average price. Exact at the prices' own scale whenever it terminates
    (Decimal division keeps the ideal exponent: notional's minus quantity's = the tick
    scale), else 28 significant digits."""
    return notional / quantity


@dataclass(frozen=True, slots=True)
class NewFill:
    order_id: str
    fill: FillView


@dataclass
class ReducedBatch:
    """What one batch changed, in first-seen order."""

    created_order_ids: list[str] = field(default_factory=list)
    changed_order_ids: list[str] = field(default_factory=list)
    fills: list[NewFill] = field(default_factory=list)
    trades: list[TradeView] = field(default_factory=list)
    order_updates: list[OrderUpdate] = field(default_factory=list)


class OrdersReducer:
    """Applies events to the order states it was given (and creates the orders it meets)."""

    def __init__(
        self,
        orders: Mapping[str, OrderState] | None = None,
        collect_updates: bool | Callable[[str], bool] = True,
    ) -> None:
        """`collect_updates`: whether to build `OrderUpdate`s, or a predicate on the user id
        (e.g. "has live subscribers"), since building them costs a view per change."""
        self.orders: dict[str, OrderState] = dict(orders or {})
        self._wants_updates: Callable[[str], bool] = (
            collect_updates if callable(collect_updates) else (lambda _user: collect_updates)
        )
        self.batch = ReducedBatch()
        self._created: set[str] = set()
        self._changed: set[str] = set()
        self._trades_by_id: dict[str, TradeView] = {}
        self._raw_updates: list[tuple[OrderView, str, str | None, str]] = []

    def apply(self, event: LogEvent) -> None:
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, record_of(event), event)

    # -- handlers: each takes the event's typed record and the event (where and when) ---

    def _on_place_requested(self, record: Any, event: LogEvent) -> None:
        request: rec.OrderPlaceRequested = record
        order_id = request.order_id
        if order_id in self.orders:
            return
        state = placed_state(request)
        self.orders[order_id] = state
        self._created.add(order_id)
        self.batch.created_order_ids.append(order_id)
        self._touch(state, event, updated_at=state.created_at)

    def _on_accepted(self, record: Any, event: LogEvent) -> None:
        accepted: rec.OrderAccepted = record
        state = self._state_for(accepted, event)
        if state is None:
            return
        if not state.instrument:  # no request before it (a log written by the engine)
            _fill_static_fields(state, accepted, accepted.order_type, only_missing=True)
            state.time_in_force = accepted.time_in_force.value
        # The engine's numbers are canonical (tick and lot scale): they win over the request.
        if accepted.price is not None:
            state.price = accepted.price
        state.quantity = accepted.quantity
        if accepted.stop_price is not None:
            state.stop_price = accepted.stop_price
        if state.stage == PENDING:
            state.stage = TRIGGER_PENDING if state.type in STOP_TYPES else OPEN
        self._touch(state, event)

    def _on_stop_triggered(self, record: Any, event: LogEvent) -> None:
        state = self._state_for(record, event)
        if state is None:
            return
        state.stage = OPEN
        self._touch(state, event)

    def _on_final(self, status: str, reason: str, record: Any, event: LogEvent) -> None:
        state = self._state_for(record, event)
        if state is None:
            return
        if state.final_status is None:
            state.final_status = status
            state.reason = reason
        if state.stage == PENDING:
            state.stage = OPEN
        self._touch(state, event)

    def _on_rejected(self, record: Any, event: LogEvent) -> None:
        rejected: rec.OrderRejected = record
        self._on_final(REJECTED, rejected.reason, rejected, event)

    def _on_cancelled(self, record: Any, event: LogEvent) -> None:
        cancelled: rec.OrderCancelled = record
        self._on_final(CANCELLED, cancelled.reason, cancelled, event)

    def _on_expired(self, record: Any, event: LogEvent) -> None:
        self._on_final(EXPIRED, "", record, event)

    def _on_amended(self, record: Any, event: LogEvent) -> None:
        amended: rec.OrderAmended = record
        state = self._state_for(amended, event)
        if state is None:
            return
        state.quantity = amended.quantity
        if amended.price is not None:
            state.price = amended.price
        self._touch(state, event)

    def _on_fill_event(self, record: Any, event: LogEvent) -> None:
        """`OrderPartiallyFilled` / `OrderFilled`: one fill, in the order's own stream (so
        in order with its acceptance, amends and cancel); `filled_quantity` is cumulative."""
        fill: rec.OrderFilled | rec.OrderPartiallyFilled = record
        state = self._state_for(fill, event)
        if state is None:
            return
        state.filled_quantity = fill.filled_quantity
        state.filled_notional += fill.price * fill.quantity
        self.batch.fills.append(
            NewFill(
                state.order_id,
                FillView(fill.trade_id, fill.price, fill.quantity, "", fill.executed_at),
            )
        )
        if state.stage == PENDING:
            state.stage = OPEN
        self._touch(state, event, trade_id=fill.trade_id)

    def _on_trade(self, record: Any, event: LogEvent) -> None:
        """A trade row; it also tells each fill whether its order was maker or taker."""
        executed: rec.TradeExecuted = record
        trade = trade_view(executed, event.position)
        self.batch.trades.append(trade)
        self._trades_by_id[trade.trade_id] = trade

    def _on_settled(self, record: Any, event: LogEvent) -> None:
        """The fees of a trade (accounts on): its `TradeSettled` follows its `TradeExecuted`
        in the same stream and atomic append, so the trade is in this batch."""
        settled: rec.TradeSettled = record
        trade = self._trades_by_id.get(settled.trade_id)
        if trade is None:
            return
        with_fees = replace(
            trade,
            buyer_fee=settled.buyer_fee,
            seller_fee=settled.seller_fee,
            fee_asset=settled.quote_asset,
        )
        self._trades_by_id[settled.trade_id] = with_fees
        trades = self.batch.trades
        for index in range(len(trades) - 1, -1, -1):
            if trades[index].trade_id == settled.trade_id:
                trades[index] = with_fees
                break

    def finish(self) -> ReducedBatch:
        """Complete the batch: each fill's liquidity and each fill update's trade come from
        the `TradeExecuted` of the same atomic append, wherever it stood in it."""
        batch = self.batch
        for index, new in enumerate(batch.fills):
            trade = self._trades_by_id.get(new.fill.trade_id)
            if trade is not None and not new.fill.liquidity:
                liquidity = TAKER if trade.taker_order_id == new.order_id else MAKER
                batch.fills[index] = NewFill(new.order_id, replace(new.fill, liquidity=liquidity))
        batch.order_updates = [
            OrderUpdate(view, event_type, self._trades_by_id.get(trade_id or ""), position)
            for view, event_type, trade_id, position in self._raw_updates
        ]
        self._raw_updates = []
        return batch

    # -- helpers -------------------------------------------------------------------------

    def _state_for(self, record: Any, event: LogEvent) -> OrderState | None:
        order_id = order_id_of(event, record)
        if order_id is None:
            return None
        state = self.orders.get(order_id)
        if state is None:
            # An engine result without its request (a log written by the engine alone):
            # the order starts here, with whatever the event says about it.
            state = OrderState(order_id=order_id, created_at=event.recorded_at)
            if isinstance(record, rec.OrderAccepted):
                _fill_static_fields(state, record, record.order_type)
                state.time_in_force = record.time_in_force.value
            else:
                state.instrument = getattr(record, "instrument", None) or ""
                state.user_id = getattr(record, "user_id", None) or ""
            self.orders[order_id] = state
            self._created.add(order_id)
            self.batch.created_order_ids.append(order_id)
        return state

    def _touch(
        self,
        state: OrderState,
        event: LogEvent,
        trade_id: str | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        """Record that `event` changed `state`: at its recording time, or at `updated_at`
        (a place request: when it was asked, the time its command response shows too)."""
        state.updated_at = updated_at or event.recorded_at
        if state.order_id not in self._created and state.order_id not in self._changed:
            self._changed.add(state.order_id)
            self.batch.changed_order_ids.append(state.order_id)
        if state.created_at is None:
            state.created_at = event.recorded_at
        if self._wants_updates(state.user_id):
            self._raw_updates.append(
                (state.to_view(), event.type, trade_id, position_token(event.position))
            )


def placed_state(request: rec.OrderPlaceRequested) -> OrderState:
    """An order as its place request makes it: PENDING, created when it was asked. The
    command side answers a place with this too, so its answer and the views agree."""
    # Field by field (not `_fill_static_fields`' generic copy): it runs for every order
    # placed, on the command path as well as in the view.
    return OrderState(
        order_id=request.order_id,
        client_order_id=request.client_order_id,
        user_id=request.user_id,
        instrument=request.instrument,
        side=request.side.value,
        type=request.type.value,
        price=request.price,
        quantity=request.quantity,
        time_in_force=request.time_in_force.value,
        stop_price=request.stop_price,
        post_only=request.post_only,
        expire_time=request.expire_time,
        created_at=request.requested_at,
    )


def _fill_static_fields(
    state: OrderState,
    order: rec.OrderPlaceRequested | rec.OrderAccepted,
    order_type: OrderType,
    only_missing: bool = False,
) -> None:
    """Copy what an order is (user, instrument, side, type, price, ...) from its request or
    its acceptance; `only_missing` keeps what the state already has."""

    def wanted(current: object) -> bool:
        return not only_missing or current in ("", None, False, Decimal(0))

    for name, value in (
        ("user_id", order.user_id),
        ("instrument", order.instrument),
        ("side", order.side.value),
        ("type", order_type.value),
        ("price", order.price),
        ("quantity", order.quantity),
        ("stop_price", order.stop_price),
        ("expire_time", order.expire_time),
    ):
        if value is not None and value != "" and wanted(getattr(state, name)):
            setattr(state, name, value)
    if order.post_only and wanted(state.post_only):
        state.post_only = True


_HANDLERS: dict[str, Callable[[OrdersReducer, Any, LogEvent], None]] = {
    rec.OrderPlaceRequested.__name__: OrdersReducer._on_place_requested,
    rec.OrderAccepted.__name__: OrdersReducer._on_accepted,
    rec.OrderRejected.__name__: OrdersReducer._on_rejected,
    rec.TradeExecuted.__name__: OrdersReducer._on_trade,
    rec.OrderPartiallyFilled.__name__: OrdersReducer._on_fill_event,
    rec.OrderFilled.__name__: OrdersReducer._on_fill_event,
    rec.OrderCancelled.__name__: OrdersReducer._on_cancelled,
    rec.OrderExpired.__name__: OrdersReducer._on_expired,
    rec.OrderAmended.__name__: OrdersReducer._on_amended,
    rec.StopTriggered.__name__: OrdersReducer._on_stop_triggered,
    rec.TradeSettled.__name__: OrdersReducer._on_settled,
}
