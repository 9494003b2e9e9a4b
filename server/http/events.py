"""The live feeds as server-sent events: trades, the book (a snapshot, then updates whose
sequences follow it without gap), and the caller's order changes.

Each stream is the gRPC stream's subscription (``projections.live``, ``server.trade_feed``)
written as `text/event-stream`; it holds one of the key's stream slots while open (the
same slots as gRPC's: MAX_STREAMS_PER_KEY). A comment line goes out every KEEPALIVE_S when
nothing happens, so proxies keep the connection and a gone client is noticed. A subscriber
that falls behind gets an `error` event (RESOURCE_EXHAUSTED: resubscribe) and the stream
ends, as the gRPC stream ends with that status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from domain.instruments import Instrument
from projections.live import SubscriberLagged
from server.errors import Refused
from server.eventstore.port import LogPosition
from server.http import bodies
from server.identity.access import readable_account
from server.identity.context import current_principal
from server.limits.refusals import too_many_streams_message
from server.limits.stream_slots import StreamSlots
from server.request_checks import known_instrument, optional_id, require_id
from server.trade_feed import TradesAfter, trades_from

KEEPALIVE_S = 15.0
EVENT_STREAM = "text/event-stream"
_Item = TypeVar("_Item")


class TooManyStreams(Refused):
    status = "RESOURCE_EXHAUSTED"


def event_bytes(event: str, data: object, event_id: str = "") -> bytes:
    """One server-sent event (msgspec's JSON holds no newline, so one data line)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + msgspec.json.encode(data) + b"\n\n"


def _lagged_event(lagged: SubscriberLagged) -> bytes:
    detail = bodies.ErrorDetail(code="RESOURCE_EXHAUSTED", message=str(lagged))
    return event_bytes("error", bodies.ErrorBody(detail))


async def _with_keepalive(
    items: AsyncIterator[_Item], every_s: float
) -> AsyncIterator[_Item | None]:
    """`items`, with None whenever `every_s` passes without one. The pending read is kept
    across a keep-alive (never cancelled), so no item is lost."""
    pending: asyncio.Future[_Item] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(items.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


class EventStreamResponse(StreamingResponse):
    """A stream whose `on_close` runs however it ends (even if it never started)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type=EVENT_STREAM, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class EventStreams:
    def __init__(
        self,
        feeds: Any,
        trades_after: TradesAfter | None,
        instruments: Mapping[str, Instrument],
        slots: StreamSlots,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._feeds = feeds
        self._trades_after = trades_after
        self._instruments = instruments
        self._slots = slots
        self._keepalive_s = keepalive_s

    def _slot_key(self, request: Request) -> str:
        """Whose stream slots this stream holds: the key's, or a keyless caller's host."""
        principal = current_principal()
        if principal is not None:
            return principal.key_id
        return f"http:{request.client.host if request.client else 'unknown'}"

    def _respond(self, request: Request, items: Any, render: Callable[[Any], bytes]) -> Response:
        """Hold a stream slot for `items` (a subscription: closed at the end), then stream
        each item as `render` writes it."""
        key = self._slot_key(request)
        if not self._slots.open(key):
            items.close()
            raise TooManyStreams(too_many_streams_message(self._slots.cap))
        closed = False

        def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                items.close()
                self._slots.close(key)

        async def content() -> AsyncIterator[bytes]:
            yield b": connected\n\n"  # headers and a first byte now: the client knows it is on
            try:
                async for item in _with_keepalive(items, self._keepalive_s):
                    yield b": keep-alive\n\n" if item is None else render(item)
            except SubscriberLagged as lagged:
                yield _lagged_event(lagged)

        return EventStreamResponse(content(), close)

    def _check_instrument(self, symbol: str, required: bool = True) -> None:
        known_instrument(self._instruments, "instrument", symbol, required=required)

    async def trades(
        self, request: Request, instrument: str, after: LogPosition | None
    ) -> Response:
        self._check_instrument(instrument)
        feed = await trades_from(self._feeds, self._trades_after, instrument, after)
        return self._respond(
            request,
            feed,
            lambda trade: event_bytes("trade", bodies.trade_body(trade), trade.position),
        )

    def book(self, request: Request, instrument: str, depth: int) -> Response:
        self._check_instrument(instrument)
        subscription = self._feeds.subscribe_book(instrument, depth)

        def render(item: Any) -> bytes:
            event = bodies.book_event(item)
            name = "snapshot" if isinstance(event, bodies.BookSnapshotEvent) else "update"
            return event_bytes(name, event, str(item.sequence))

        return self._respond(request, subscription, render)

    def orders(self, request: Request, requested_user_id: str, instrument: str) -> Response:
        optional_id("user_id", requested_user_id)
        # The key's own account (an admin's: any it names).
        user_id = require_id("user_id", readable_account(requested_user_id))
        self._check_instrument(instrument, required=False)
        subscription = self._feeds.subscribe_order_updates(user_id, instrument or None)
        return self._respond(
            request,
            subscription,
            lambda update: event_bytes("order", bodies.order_update_event(update), update.position),
        )
