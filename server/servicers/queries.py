"""OrderQueryService: the order queries (``server.order_reads``) as protobuf."""

from __future__ import annotations

from typing import Any

import grpc

from clients.generated.exchange.v1 import order_query_service_pb2 as pb
from clients.generated.exchange.v1 import order_query_service_pb2_grpc as pb_grpc
from server.identity.context import current_principal
from server.order_reads import OrderReads, ReadYourWrites, ViewsBehind
from server.servicers.convert import (
    decimal_text,
    instrument_message,
    order_message,
    price_level_message,
    status_name,
    trade_message,
)

# Where they lived before server.order_reads: kept importable from here.
__all__ = ["OrderQueryServicer", "ReadYourWrites", "ViewsBehind"]


class OrderQueryServicer(pb_grpc.OrderQueryServiceServicer):
    def __init__(self, reads: OrderReads, balance_views: Any = None) -> None:
        """`balance_views` (``projections.balance_views.BalanceViews``) for the instruments'
        statuses; None: every instrument shows TRADING."""
        self._reads = reads
        self._balance_views = balance_views

    async def GetOrder(
        self,
        request: pb.GetOrderRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse],
    ) -> pb.GetOrderResponse:
        order = await self._reads.order(
            request.order_id, request.user_id, request.min_position, context.time_remaining()
        )
        return pb.GetOrderResponse(order=order_message(order))

    async def ListOrders(
        self,
        request: pb.ListOrdersRequest,
        context: grpc.aio.ServicerContext[pb.ListOrdersRequest, pb.ListOrdersResponse],
    ) -> pb.ListOrdersResponse:
        orders, next_token = await self._reads.orders(
            request.user_id,
            request.instrument,
            status_name(request.status),
            request.page_size,
            request.page_token,
            request.min_position,
            context.time_remaining(),
        )
        return pb.ListOrdersResponse(
            orders=[order_message(order) for order in orders], next_page_token=next_token
        )

    async def GetOrderBook(
        self,
        request: pb.GetOrderBookRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderBookRequest, pb.GetOrderBookResponse],
    ) -> pb.GetOrderBookResponse:
        book = await self._reads.book(
            request.instrument, request.depth, request.min_position, context.time_remaining()
        )
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
        trades, next_token = await self._reads.trades(
            request.instrument,
            request.page_size,
            request.page_token,
            request.min_position,
            context.time_remaining(),
        )
        principal = current_principal()  # None on public market data: no fees shown
        viewer = None if principal is None else principal.user_id
        return pb.ListTradesResponse(
            trades=[trade_message(trade, viewer) for trade in trades],
            next_page_token=next_token,
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
                    instrument,
                    statuses[instrument.symbol].status
                    if instrument.symbol in statuses
                    else "TRADING",
                )
                for instrument in self._reads.instrument_list()
            ]
        )
