"""Command handlers: validate a command, check the order it concerns, append a request event.

Handlers never touch a book: they append ``*Requested`` events to the order's stream and the
engine runner does the rest. A refused command raises a ``server.errors.Refused`` and
appends nothing.

- Placing is idempotent per user through ``client_order_id``: the order id is derived from
  (user_id, client_order_id), and the first event of ``order-<id>`` is appended with expected
  version NO_STREAM, so a retry finds the stream taken and returns the original order.
- Cancel and amend read the order's own stream (``server.order_state``) for the ownership and
  closed-order checks, and append at that stream's exact version so no check is made on a
  stale view (a conflict re-reads and checks again).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from domain.commands import AmendOrder, PlaceOrder
from domain.errors import InvalidField
from domain.instruments import Instrument, parse_decimal
from domain.orders import OrderType, SelfTradePrevention, Side, TimeInForce
from server.engine_inputs import InputTranslator
from server.errors import (
    IdempotencyConflict,
    InvalidArgument,
    OrderClosed,
    OrderNotFound,
)
from server.eventstore.port import (
    AppendResult,
    EventStore,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    WrongExpectedVersion,
)
from server.log_contract.layout import (
    CORRELATION_ID,
    cancel_all_stream,
    order_stream,
)
from server.log_contract.mapper import decode, encode
from server.log_contract.records import (
    CancelAllRequested,
    LogRecord,
    OrderAmendRequested,
    OrderCancelRequested,
    OrderPlaceRequested,
    Request,
)
from server.money_commands import check_trading_account
from server.observability import metrics
from server.order_state import OrderState, fold_order, load_order_state, placed_order
from server.outcomes import RequestRef
from server.request_checks import known_instrument, require_id

# Orders placed with a client_order_id get a name-based id, so a retry maps to the same stream.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ORDER_ID_NAMESPACE = uuid.UUID("4b1c3f0e-6f0a-4d55-9f1e-2f6f2c9a7e10")
# A cancel/amend whose order changed between read and append re-checks this many times.
MAX_CONFLICT_RETRIES = 20

# The log's enum members by name: what the door accepts, and the record it builds.
_SIDE_OF = {side.value: side for side in Side}
_TYPE_OF = {order_type.value: order_type for order_type in OrderType}
_TIME_IN_FORCE_OF = {time_in_force.value: time_in_force for time_in_force in TimeInForce}
_STP_OF = {mode.value: mode for mode in SelfTradePrevention}


@dataclass(frozen=True)
class PlaceOrderInput:
    """A place request in the log's vocabulary (enums as the replayer's upper-case names)."""

    user_id: str
    instrument: str
    side: str | None
    type: str | None
    quantity: str
    price: str | None = None
    stop_price: str | None = None
    time_in_force: str | None = None
    expire_time: datetime | None = None
    post_only: bool = False
    max_slippage_bps: int | None = None
    stp: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class CommandOutcome:
    """The order as known after the write, and where the write sits in the log."""

    order: OrderState
    position: LogPosition
    duplicate: bool = False
    # The request the engine answers (the original place request on a duplicate), for
    # waiting on its outcome (server.outcomes).
    request: RequestRef | None = None


@dataclass(frozen=True)
class CancelAllWritten:
    """Where a cancel-all request sits in the log, and its event id (what the engine's
    cancels name as their cause, for waiting on them: server.outcomes)."""

    position: LogPosition
    event_id: uuid.UUID


# The conversion the runner refuses a decimal field with, by field name.
_STEPS_OF: dict[str, Callable[[Instrument, str, str], int]] = {
    "quantity": Instrument.quantity_to_lots,
    "price": Instrument.price_to_ticks,
    "stop_price": Instrument.price_to_ticks,
}


def _decimal_of(field: str, text: str) -> Decimal:
    """A decimal field's text as the record's Decimal (refused when the log cannot hold it)."""
    try:
        return parse_decimal(text, field)
    except InvalidField as error:
        raise InvalidArgument.from_field(error) from None


def _optional_decimal_of(field: str, text: str | None) -> Decimal | None:
    return _decimal_of(field, text) if text else None


def _as_sent(
    error: InvalidField, sent: Mapping[str, str | None], instrument: Instrument | None
) -> InvalidField:
    """The runner's refusal of a decimal, described with the text the client sent (not the
    record's Decimal) by the same conversion: same field and reason, the door's wording."""
    convert = _STEPS_OF.get(error.field)
    text = sent.get(error.field)
    if convert is None or not text or instrument is None:
        return error
    try:
        convert(instrument, text, error.field)
    except InvalidField as as_sent:
        return as_sent
    return error


def _order_terms(place_request: LogRecord) -> LogRecord:
    """What a place request asks for, without when it was asked (the idempotency check)."""
    return msgspec.structs.replace(place_request, requested_at=_EPOCH)


def _request_event(
    record: LogRecord, correlation_id: str, metadata: Mapping[str, str] | None
) -> NewEvent:
    """The log event of a request record, correlated (and traced, when `metadata` says)."""
    event_type, data, schema = encode(record)
    return NewEvent(
        type=event_type,
        data=data,
        metadata={CORRELATION_ID: correlation_id, **schema, **(metadata or {})},
    )


def _appended(state: OrderState, event: NewEvent, result: AppendResult) -> CommandOutcome:
    """The outcome of a cancel or amend request written to the order's stream."""
    return CommandOutcome(
        order=state,
        position=result.positions[0],
        request=RequestRef(
            state.order_id, result.first_version, event.event_id, result.positions[0]
        ),
    )


def order_id_for(user_id: str, client_order_id: str | None) -> str:
    """A fresh order id, or the one (user_id, client_order_id) always maps to."""
    if client_order_id:
        return str(uuid.uuid5(ORDER_ID_NAMESPACE, f"{user_id}\x1f{client_order_id}"))
    return str(uuid.uuid4())


class CommandHandlers:
    """The write side's application service."""

    def __init__(
        self,
        event_store: EventStore,
        instruments: Mapping[str, Instrument],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        backend: str = "postgresql",
    ) -> None:
        self._event_store = event_store
        self._instruments = instruments
        self._now = now
        self._backend = backend  # label of the event-store metrics
        self._translator = InputTranslator(instruments)

    async def _append(
        self, stream: str, event: NewEvent, expected: ExpectedVersion | int
    ) -> AppendResult:
        with metrics.time_append(self._backend, 1):
            return await self._event_store.append(stream, [event], expected)

    # -- place ---------------------------------------------------------------------------

    def _place_record(
        self, request: PlaceOrderInput, order_id: str, now: datetime
    ) -> OrderPlaceRequested:
        """Validate `request` and return the place request the log will hold."""
        require_id("user_id", request.user_id)
        check_trading_account(request.user_id)
        if request.client_order_id is not None:
            require_id("client_order_id", request.client_order_id)
        known_instrument(self._instruments, "instrument", request.instrument, required=True)
        if request.side is None:
            raise InvalidArgument.of("side", "REQUIRED", "side must be BUY or SELL")
        if request.side not in _SIDE_OF:
            raise InvalidArgument.of("side", "MALFORMED", "side must be BUY or SELL")
        if request.type is None:
            raise InvalidArgument.of("type", "REQUIRED", "type must be set")
        if request.type not in _TYPE_OF:
            raise InvalidArgument.of("type", "MALFORMED", "unknown order type")
        time_in_force = request.time_in_force or "GTC"
        if time_in_force not in _TIME_IN_FORCE_OF:
            raise InvalidArgument.of("time_in_force", "MALFORMED", "unknown time in force")
        if request.stp is not None and request.stp not in _STP_OF:
            raise InvalidArgument.of("stp", "MALFORMED", "unknown self-trade prevention")
        self._check_shape(request, time_in_force)
        if request.expire_time is not None and request.expire_time <= now:
            # The engine would expire it at once: refused here like every invalid field.
            raise InvalidArgument.of(
                "expire_time", "IN_THE_PAST", "expire_time must be later than now"
            )
        instrument = self._instruments[request.instrument]
        quantity = _decimal_of("quantity", request.quantity)
        # A decimal the log cannot hold is refused after what precedes it in the runner's
        # order (quantity, price, expire_time, max_slippage_bps, stop_price): the record
        # leaves it and what follows it out, so the runner's checks report those first.
        price = stop_price = unreadable = None
        price_read = False
        try:
            price = _optional_decimal_of("price", request.price)
            price_read = True
            stop_price = _optional_decimal_of("stop_price", request.stop_price)
        except InvalidArgument as refusal:
            unreadable = refusal
        record = OrderPlaceRequested(
            user_id=request.user_id,
            requested_at=now,
            order_id=order_id,
            instrument=request.instrument,
            side=_SIDE_OF[request.side],
            type=_TYPE_OF[request.type],
            quantity=quantity,
            price=price,
            stop_price=stop_price,
            time_in_force=_TIME_IN_FORCE_OF[time_in_force],
            expire_time=request.expire_time if price_read else None,
            post_only=request.post_only,
            max_slippage_bps=(request.max_slippage_bps or None) if price_read else None,
            stp=_STP_OF[request.stp] if request.stp else SelfTradePrevention.CANCEL_NEWEST,
            client_order_id=request.client_order_id or "",
        )
        sent = {
            "quantity": request.quantity,
            "price": request.price,
            "stop_price": request.stop_price,
        }
        command = self._command_of(record, sent, instrument)
        if unreadable is not None:
            raise unreadable
        assert isinstance(command, PlaceOrder)
        # The log holds decimals at the instrument's scale (1.5 lots of 0.0001 is 1.5000).
        return msgspec.structs.replace(
            record,
            quantity=instrument.lots_to_quantity(command.quantity),
            price=None if command.price is None else instrument.ticks_to_price(command.price),
            stop_price=None
            if command.stop_price is None
            else instrument.ticks_to_price(command.stop_price),
        )

    def _command_of(
        self, record: Request, sent: Mapping[str, str | None], instrument: Instrument | None
    ) -> Any:
        """The engine's command for `record`, by the engine runner's own translation, so
        the door refuses exactly what the runner would (InvalidArgument)."""
        try:
            return self._translator.command_of(record)
        except InvalidField as error:
            raise InvalidArgument.from_field(_as_sent(error, sent, instrument)) from error

    @staticmethod
    def _check_shape(request: PlaceOrderInput, time_in_force: str) -> None:
        """Field presence rules that depend on the order type (before the grid checks)."""
        if not request.quantity:
            raise InvalidArgument.of("quantity", "REQUIRED", "quantity is required")
        needs_price = request.type in ("LIMIT", "STOP_LIMIT")
        if needs_price and not request.price:
            raise InvalidArgument.of("price", "REQUIRED", f"{request.type} orders need a price")
        if not needs_price and request.price:
            raise InvalidArgument.of("price", "NOT_ALLOWED", f"{request.type} orders take no price")
        is_stop = request.type in ("STOP_LIMIT", "STOP_MARKET")
        if is_stop and not request.stop_price:
            raise InvalidArgument.of("stop_price", "REQUIRED", "stop orders need a stop_price")
        if not is_stop and request.stop_price:
            raise InvalidArgument.of(
                "stop_price", "NOT_ALLOWED", "only stop orders take a stop_price"
            )
        if time_in_force == "GTD" and request.expire_time is None:
            raise InvalidArgument.of("expire_time", "REQUIRED", "GTD orders need an expire_time")
        if time_in_force != "GTD" and request.expire_time is not None:
            raise InvalidArgument.of(
                "expire_time", "NOT_ALLOWED", "only GTD orders take an expire_time"
            )
        if request.post_only and request.type != "LIMIT":
            raise InvalidArgument.of(
                "post_only", "NOT_ALLOWED", "post_only applies to limit orders only"
            )
        if request.max_slippage_bps and request.type not in ("MARKET", "STOP_MARKET"):
            raise InvalidArgument.of(
                "max_slippage_bps", "NOT_ALLOWED", "max_slippage_bps applies to market orders"
            )

    def place_request_event(
        self, request: PlaceOrderInput, metadata: Mapping[str, str] | None = None
    ) -> tuple[str, NewEvent]:
        """Validate and build the OrderPlaceRequested event (order id, event); no I/O."""
        record, event = self._place_request(request, metadata)
        return record.order_id, event

    def _place_request(
        self, request: PlaceOrderInput, metadata: Mapping[str, str] | None
    ) -> tuple[OrderPlaceRequested, NewEvent]:
        order_id = order_id_for(request.user_id, request.client_order_id)
        record = self._place_record(request, order_id, self._now())
        return record, _request_event(record, order_id, metadata)

    async def place_order(
        self, request: PlaceOrderInput, metadata: Mapping[str, str] | None = None
    ) -> CommandOutcome:
        record, event = self._place_request(request, metadata)
        order_id = record.order_id
        try:
            result = await self._append(order_stream(order_id), event, ExpectedVersion.NO_STREAM)
        except WrongExpectedVersion:
            if not request.client_order_id:
                raise  # a uuid4 collision: never in practice
            return await self._original_order(record)
        # The answer comes from the record itself, by the read side's first step: nothing
        # to decode or fold (the views show the same order until the engine answers).
        position = result.positions[0]
        return CommandOutcome(
            order=placed_order(record, position),
            position=position,
            request=RequestRef(order_id, 0, event.event_id, position),
        )

    async def _original_order(self, retry: OrderPlaceRequested) -> CommandOutcome:
        """The order a retry names, when the retry asks for exactly that order again."""
        order_id = retry.order_id
        events = await self._event_store.read_stream(order_stream(order_id))
        state = fold_order(order_id, events)
        if state is None or _order_terms(decode(events[0])) != _order_terms(retry):
            raise IdempotencyConflict(
                f"client_order_id {retry.client_order_id!r} already names an order "
                "with other parameters"
            )
        assert state.placed_position is not None  # a folded order knows where it was placed
        return CommandOutcome(
            order=state,
            position=state.placed_position,
            duplicate=True,
            request=RequestRef(order_id, 0, events[0].event_id, state.placed_position),
        )

    # -- cancel and amend ------------------------------------------------------------------

    async def _checked_open_order(self, user_id: str | None, order_id: str) -> OrderState:
        """The open order `order_id` of `user_id` (None: of any user, an admin's cancel).
        Another user's order is NOT_FOUND, so order ids cannot be probed."""
        if user_id is not None:
            require_id("user_id", user_id)
        require_id("order_id", order_id)
        state = await load_order_state(self._event_store, order_id)
        if state is None or (user_id is not None and state.user_id != user_id):
            raise OrderNotFound(order_id)
        if state.is_closed:
            raise OrderClosed(order_id, state.status)
        return state

    async def _append_checked(
        self,
        user_id: str | None,
        order_id: str,
        build: Callable[[OrderState], NewEvent],
    ) -> CommandOutcome:
        for _ in range(MAX_CONFLICT_RETRIES):
            state = await self._checked_open_order(user_id, order_id)
            event = build(state)
            try:
                result = await self._append(order_stream(order_id), event, state.version)
            except WrongExpectedVersion:
                continue  # the engine wrote to the order meanwhile: check again
            return _appended(state, event, result)
        # The order keeps changing under us (a busy resting order): append unconditionally;
        # the engine rejects the request if the order has closed by then.
        state = await self._checked_open_order(user_id, order_id)
        event = build(state)
        result = await self._append(order_stream(order_id), event, ExpectedVersion.ANY)
        return _appended(state, event, result)

    async def cancel_order(
        self, user_id: str | None, order_id: str, metadata: Mapping[str, str] | None = None
    ) -> CommandOutcome:
        """Cancel `user_id`'s order; None cancels whoever's it is (an admin's cancel, written
        under the owner's user id)."""

        def build(state: OrderState) -> NewEvent:
            record = OrderCancelRequested(
                user_id=state.user_id, requested_at=self._now(), order_id=order_id
            )
            return _request_event(record, order_id, metadata)

        return await self._append_checked(user_id, order_id, build)

    async def cancel_all_orders(
        self, user_id: str, instrument: str | None, metadata: Mapping[str, str] | None = None
    ) -> CancelAllWritten:
        """Write a user's cancel-all request; its position in the log (and event id). The
        engine cancels what of theirs is open when it reads the request (orders placed
        later stay)."""
        require_id("user_id", user_id)
        record = CancelAllRequested(
            user_id=user_id,
            requested_at=self._now(),
            instrument=known_instrument(
                self._instruments, "instrument", instrument or "", required=False
            ),
        )
        stream = cancel_all_stream(user_id)
        event = _request_event(record, stream, metadata)
        result = await self._append(stream, event, ExpectedVersion.ANY)
        return CancelAllWritten(position=result.positions[0], event_id=event.event_id)

    def _amend_record(
        self, state: OrderState, user_id: str, price: str | None, quantity: str | None
    ) -> OrderAmendRequested:
        if not price and not quantity:
            raise InvalidArgument.of("quantity", "REQUIRED", "an amend needs a price or quantity")
        if price and state.type not in ("LIMIT", "STOP_LIMIT"):
            raise InvalidArgument.of("price", "NOT_ALLOWED", f"{state.type} orders have no price")
        instrument = self._instruments.get(state.instrument)
        # As for a place: a decimal the log cannot hold is refused after what the runner
        # checks before it (the instrument, then the quantity before the price).
        quantity_number = price_number = unreadable = None
        try:
            quantity_number = _decimal_of("quantity", quantity) if quantity else None
            price_number = _decimal_of("price", price) if price else None
        except InvalidArgument as refusal:
            unreadable = refusal
        record = OrderAmendRequested(
            user_id=user_id,
            requested_at=self._now(),
            order_id=state.order_id,
            instrument=state.instrument,
            price=price_number,
            quantity=quantity_number,
        )
        command = self._command_of(record, {"price": price, "quantity": quantity}, instrument)
        if unreadable is not None:
            raise unreadable
        assert isinstance(command, AmendOrder) and instrument is not None
        return msgspec.structs.replace(
            record,
            price=None if command.price is None else instrument.ticks_to_price(command.price),
            quantity=None
            if command.quantity is None
            else instrument.lots_to_quantity(command.quantity),
        )

    async def amend_order(
        self,
        user_id: str,
        order_id: str,
        price: str | None,
        quantity: str | None,
        metadata: Mapping[str, str] | None = None,
    ) -> CommandOutcome:
        def build(state: OrderState) -> NewEvent:
            return _request_event(
                self._amend_record(state, user_id, price, quantity), order_id, metadata
            )

        return await self._append_checked(user_id, order_id, build)
