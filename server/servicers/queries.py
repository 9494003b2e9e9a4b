"""OrderQueryService: reads the projections' views, waiting for `min_position` first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from clients.generated.exchange.v1 import order_query_service_pb2 as pb
from clients.generated.exchange.v1 import order_query_service_pb2_grpc as pb_grpc
from domain.instruments import Instrument
from server.errors import (
    InvalidArgument,
    OrderNotFound,
    PositionBeyondLog,
    Refused,
)
from server.eventstore.port import EventStore
from server.identity.access import order_owner_filter, readable_account
from server.identity.context import current_principal
from server.observability.consumer_failures import ConsumerFailures
from server.request_checks import (
    known_instrument,
    log_position_of,
    optional_id,
    page_size_of,
    require_id,
)
from server.servicers.convert import (
    decimal_text,
    instrument_message,
    order_message,
    price_level_message,
    status_name,
    trade_message,
)
from server.stuck_consumers import PROJECTION_CONSUMER_PREFIX, refuse_if_stuck_before


class ViewsBehind(Refused):
    status = "DEADLINE_EXCEEDED"


class ReadYourWrites:
    """Waits until the views have committed a position token (bounded by the deadline, and
    by `max_wait_s` (MAX_READ_WAIT_S) whatever the deadline, so a far deadline cannot hold a
    call and its resources for long).
    No wait that could never end is started: a token beyond the log's last committed event
    is OUT_OF_RANGE, and one at or past the event a view builder is stuck at is UNAVAILABLE
    (until the event is repaired), both at once."""

    def __init__(
        self,
        progress: Any,
        event_store: EventStore,
        default_wait_s: float,
        failures: ConsumerFailures | None = None,
        max_wait_s: float | None = None,
    ) -> None:
        self._progress = progress
        self._max_wait_s = max_wait_s
        self._event_store = event_store
        self._default_wait_s = default_wait_s
        self._failures = failures

    async def wait(self, token: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        position = log_position_of("min_position", token)
        if position is None or self._progress.reached(position):
            return
        last = await self._event_store.last_committed_position()
        if last is None or position > last:
            raise PositionBeyondLog(f"min_position {token} is beyond the log's last event")
        refuse_if_stuck_before(
            self._failures, PROJECTION_CONSUMER_PREFIX, position, "the views are stopped"
        )
        remaining = context.time_remaining()
        timeout = self._default_wait_s if remaining is None else max(0.0, remaining - 0.005)
        if self._max_wait_s is not None:
            timeout = min(timeout, self._max_wait_s)
        if not await self._progress.wait_for(position, timeout):
            raise ViewsBehind(f"views have not reached {token} yet")


class OrderQueryServicer(pb_grpc.OrderQueryServiceServicer):
    def __init__(
        self,
        order_views: Any,
        book_views: Any,
        read_your_writes: ReadYourWrites,
        instruments: Mapping[str, Instrument],
        balance_views: Any = None,
    ) -> None:
        """`balance_views` (``projections.balance_views.BalanceViews``) for the instruments'
        statuses; None: every instrument shows TRADING."""
        self._balance_views = balance_views
        self._orders = order_views
        self._books = book_views
        self._read_your_writes = read_your_writes
        self._instruments = instruments

    async def GetOrder(
        self,
        request: pb.GetOrderRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse],
    ) -> pb.GetOrderResponse:
        require_id("order_id", request.order_id)
        optional_id("user_id", request.user_id)
        owner = order_owner_filter(request.user_id)
        await self._read_your_writes.wait(request.min_position, context)
        order = await self._orders.get_order(request.order_id)
        # Another account's order is NOT_FOUND: order ids cannot be probed.
        if order is None or (owner is not None and order.user_id != owner):
            raise OrderNotFound(request.order_id)
        return pb.GetOrderResponse(order=order_message(order))

    async def ListOrders(
        self,
        request: pb.ListOrdersRequest,
        context: grpc.aio.ServicerContext[pb.ListOrdersRequest, pb.ListOrdersResponse],
    ) -> pb.ListOrdersResponse:
        optional_id("user_id", request.user_id)
        user_id = require_id("user_id", readable_account(request.user_id))
        known_instrument(self._instruments, "instrument", request.instrument, required=False)
        status = status_name(request.status)
        page_size = page_size_of(request.page_size)
        await self._read_your_writes.wait(request.min_position, context)
        try:
            orders, next_token = await self._orders.list_orders(
                user_id,
                instrument=request.instrument or None,
                status=status,
                page_size=page_size,
                page_token=request.page_token or None,
            )
        except ValueError as error:
            raise InvalidArgument.of("page_token", "MALFORMED", str(error)) from error
        return pb.ListOrdersResponse(
            orders=[order_message(order) for order in orders], next_page_token=next_token or ""
        )

    async def GetOrderBook(
        self,
        request: pb.GetOrderBookRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderBookRequest, pb.GetOrderBookResponse],
    ) -> pb.GetOrderBookResponse:
        known_instrument(self._instruments, "instrument", request.instrument, required=True)
        await self._read_your_writes.wait(request.min_position, context)
        book = await self._books.get_book(request.instrument, request.depth or None)
        return pb.GetOrderBookResponse(
            instrument=request.instrument,
            bids=[price_level_message(level) for level in book.bids],
            asks=[price_level_message(level) for level in book.asks],
            sequence=book.sequence,
            last_price=decimal_text(book.last_price),
        )

    async def ListTrades(
        self,
        request: pb.ListTradesRequest,
        context: grpc.aio.ServicerContext[pb.ListTradesRequest, pb.ListTradesResponse],
    ) -> pb.ListTradesResponse:
        known_instrument(self._instruments, "instrument", request.instrument, required=True)
        page_size = page_size_of(request.page_size)
        principal = current_principal()  # None on public market data: no fees shown
        viewer = None if principal is None else principal.user_id
        await self._read_your_writes.wait(request.min_position, context)
        try:
            trades, next_token = await self._orders.list_trades(
                request.instrument, page_size=page_size, page_token=request.page_token or None
            )
        except ValueError as error:
            raise InvalidArgument.of("page_token", "MALFORMED", str(error)) from error
        return pb.ListTradesResponse(
            trades=[trade_message(trade, viewer) for trade in trades],
            next_page_token=next_token or "",
        )

    async def ListInstruments(
        self,
        request: pb.ListInstrumentsRequest,
        context: grpc.aio.ServicerContext[pb.ListInstrumentsRequest, pb.ListInstrumentsResponse],
    ) -> pb.ListInstrumentsResponse:
        statuses = (
            {} if self._balance_views is None else await self._balance_views.instrument_statuses()
        )
        return pb.ListInstrumentsResponse(
            instruments=[
                instrument_message(
                    self._instruments[s],
                    statuses[s].status if s in statuses else "TRADING",
                )
                for s in sorted(self._instruments)
            ]
        )
