"""MarketDataService: server-streaming feeds served from the projections' live fan-out.

Each call owns one bounded subscription; a subscriber that falls behind is dropped by the
feed and its call ends with RESOURCE_EXHAUSTED ("resubscribe"), never stalling the others
or growing the service's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from clients.generated.exchange.v1 import market_data_service_pb2 as pb
from clients.generated.exchange.v1 import market_data_service_pb2_grpc as pb_grpc
from domain.instruments import Instrument
from projections.live import SubscriberLagged
from projections.views import BookSnapshot, InstrumentStatusView
from server.errors import Refused
from server.eventstore.port import LogPosition
from server.identity.access import readable_account
from server.request_checks import known_instrument, log_position_of, optional_id, require_id
from server.servicers.convert import (
    decimal_text,
    instrument_status_value,
    order_message,
    price_level_message,
    side_value,
    trade_message,
)
from server.servicers.status import abort_refused
from server.trade_feed import TradesAfter, trades_from

# The end of a subscriber's stream when it fell behind its bounded buffer.
LAGGED = grpc.StatusCode.RESOURCE_EXHAUSTED


class MarketDataServicer(pb_grpc.MarketDataServiceServicer):
    def __init__(
        self,
        live_feeds: Any,
        instruments: Mapping[str, Instrument],
        trades_after: TradesAfter | None = None,
    ) -> None:
        self._feeds = live_feeds
        self._instruments = instruments
        self._trades_after = trades_after

    async def _check(
        self, context: grpc.aio.ServicerContext[Any, Any], check: Callable[[], Any]
    ) -> None:
        """Run one of the door's checks; a refusal ends the call before it subscribes."""
        try:
            check()
        except Refused as refusal:
            await abort_refused(context, refusal)

    async def _check_instrument(
        self, symbol: str, context: grpc.aio.ServicerContext[Any, Any], required: bool = True
    ) -> None:
        await self._check(
            context,
            lambda: known_instrument(self._instruments, "instrument", symbol, required=required),
        )

    async def StreamTrades(
        self,
        request: pb.StreamTradesRequest,
        context: grpc.aio.ServicerContext[pb.StreamTradesRequest, pb.StreamTradesResponse],
    ) -> AsyncIterator[pb.StreamTradesResponse]:
        await self._check_instrument(request.instrument, context)
        after: LogPosition | None = None

        def check_after() -> None:
            nonlocal after
            after = log_position_of("after_position", request.after_position)

        await self._check(context, check_after)
        async with await trades_from(
            self._feeds, self._trades_after, request.instrument, after
        ) as trades:
            try:
                async for trade in trades:
                    yield pb.StreamTradesResponse(
                        trade=trade_message(trade), position=trade.position
                    )
            except SubscriberLagged as lagged:
                await context.abort(LAGGED, str(lagged))

    async def StreamOrderBook(
        self,
        request: pb.StreamOrderBookRequest,
        context: grpc.aio.ServicerContext[pb.StreamOrderBookRequest, pb.StreamOrderBookResponse],
    ) -> AsyncIterator[pb.StreamOrderBookResponse]:
        await self._check_instrument(request.instrument, context)
        subscription = self._feeds.subscribe_book(request.instrument, request.depth)
        # A halt shows on the book stream: the snapshot's status, then each change.
        statuses = self._feeds.subscribe_instrument_status(request.instrument)
        status = "TRADING"
        sequence = 0
        async with subscription, statuses:
            try:
                # The snapshot first (it carries the status), then both feeds as they come.
                snapshot = await subscription.__anext__()
                async for item in _chained(snapshot, _merged(subscription, statuses)):
                    if isinstance(item, InstrumentStatusView):
                        if item.status != status:
                            status = item.status
                            yield pb.StreamOrderBookResponse(
                                instrument=item.instrument,
                                sequence=sequence,
                                status_change=pb.InstrumentStatusChange(
                                    status=instrument_status_value(status)
                                ),
                                position=item.position,
                            )
                    elif isinstance(item, BookSnapshot):
                        status, sequence = item.status, item.sequence
                        yield pb.StreamOrderBookResponse(
                            instrument=item.instrument,
                            sequence=item.sequence,
                            snapshot=pb.OrderBookSnapshot(
                                bids=[price_level_message(level) for level in item.bids],
                                asks=[price_level_message(level) for level in item.asks],
                                status=instrument_status_value(item.status),
                            ),
                            position=item.position,
                        )
                    else:
                        sequence = item.sequence
                        yield pb.StreamOrderBookResponse(
                            instrument=item.instrument,
                            sequence=item.sequence,
                            update=pb.OrderBookUpdate(
                                changes=[
                                    pb.PriceLevelChange(
                                        side=side_value(change.side),
                                        price=decimal_text(change.price),
                                        quantity=decimal_text(change.quantity),
                                        order_count=change.order_count,
                                    )
                                    for change in item.changes
                                ]
                            ),
                            position=item.position,
                        )
            except SubscriberLagged as lagged:
                await context.abort(LAGGED, str(lagged))

    async def StreamOrderUpdates(
        self,
        request: pb.StreamOrderUpdatesRequest,
        context: grpc.aio.ServicerContext[
            pb.StreamOrderUpdatesRequest, pb.StreamOrderUpdatesResponse
        ],
    ) -> AsyncIterator[pb.StreamOrderUpdatesResponse]:
        user_id = ""

        def check_user() -> None:
            nonlocal user_id
            optional_id("user_id", request.user_id)
            # The key's own account (an admin's: any it names).
            user_id = require_id("user_id", readable_account(request.user_id))

        await self._check(context, check_user)
        await self._check_instrument(request.instrument, context, required=False)
        subscription = self._feeds.subscribe_order_updates(user_id, request.instrument or None)
        async with subscription:
            try:
                async for update in subscription:
                    response = pb.StreamOrderUpdatesResponse(
                        order=order_message(update.order),
                        event_type=update.event_type,
                        position=update.position,
                    )
                    if update.trade is not None:
                        response.trade.CopyFrom(trade_message(update.trade, user_id))
                    yield response
            except SubscriberLagged as lagged:
                await context.abort(LAGGED, str(lagged))


async def _merged(first: AsyncIterator[Any], second: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The items of two subscriptions as they come; ends when either ends, and raises what
    either raises (a lagged subscriber)."""
    iterators = (first.__aiter__(), second.__aiter__())
    pending = {asyncio.ensure_future(it.__anext__()): it for it in iterators}
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: iterators.index(pending[t])):
                iterator = pending.pop(task)
                try:
                    item = task.result()
                except StopAsyncIteration:
                    return
                yield item
                pending[asyncio.ensure_future(iterator.__anext__())] = iterator
    finally:
        for task in pending:
            task.cancel()


async def _chained(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item
