"""The HTTP API's operations: orders (the seed's `POST /orders` and `GET /orders/{id}`,
cancel, amend, list, cancel-all), instruments, books, trades and the live feeds.

Each handler reads its request, calls the use case the gRPC servicer calls
(``server.order_commands``, ``server.order_reads``, ``projections.live``) and renders the
answer (``server.http.bodies``). The door around every handler (``server.http.door``)
checks the key and the rate limit and turns refusals into answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from domain.orders import OrderStatus
from server.commands import PlaceOrderInput
from server.errors import InvalidArgument
from server.eventstore.port import LogPosition
from server.http import bodies
from server.http.errors import json_response
from server.http.events import EventStreams
from server.http.inputs import (
    checked_moment,
    decimal_text,
    json_body,
    query_flag,
    query_int,
    query_text,
)
from server.http.operations import Operation, Param
from server.order_commands import CommandAnswer, OrderCommands
from server.order_reads import OrderReads
from server.request_checks import log_position_of

_COMMANDS = "/exchange.v1.OrderCommandService/"
_QUERIES = "/exchange.v1.OrderQueryService/"
_MARKET_DATA = "/exchange.v1.MarketDataService/"

# The rules' field names (the log's) as the order bodies and parameters name them.
_CAMEL = {
    "user_id": "userId",
    "order_id": "orderId",
    "client_order_id": "clientOrderId",
    "time_in_force": "timeInForce",
    "stop_price": "stopPrice",
    "expire_time": "expireTime",
    "post_only": "postOnly",
    "max_slippage_bps": "maxSlippageBps",
    "page_size": "pageSize",
    "page_token": "pageToken",
    "min_position": "minPosition",
    "after_position": "afterPosition",
}
ORDER_FIELDS = {**_CAMEL, "side": "type", "type": "orderType", "instrument": "asset"}
MARKET_FIELDS = dict(_CAMEL)

_USER = Param("userId", "query", "an account other than the key's (admin keys only)")
_MIN_POSITION = Param(
    "minPosition", "query", "a `position` from an earlier answer: read once the views hold it"
)
_WAIT = Param(
    "waitForOutcome", "query", "answer with the engine's outcome, not the request", "boolean"
)
_ORDER_ID = Param("orderId", "path", "the order's id", required=True)
_INSTRUMENT = Param("instrument", "path", "an instrument's symbol, e.g. BTC-USD", required=True)
_PAGE = (
    Param("pageSize", "query", "rows per page (default 100, at most 1000)", "integer"),
    Param("pageToken", "query", "`nextPageToken` of the page before"),
)


def _answer_body(answer: CommandAnswer) -> bodies.CommandAnswerBody:
    return bodies.command_answer_body(
        answer.order, answer.position, answer.duplicate, answer.rejection_reason
    )


class HttpApi:
    def __init__(self, commands: OrderCommands, reads: OrderReads, streams: EventStreams) -> None:
        self._commands = commands
        self._reads = reads
        self._streams = streams

    def _wait_s(self, wait: bool) -> float | None:
        return self._commands.default_wait_s if wait else None

    # -- orders ----------------------------------------------------------------------------

    async def place_order(self, request: Request) -> Response:
        body = await json_body(request, bodies.PlaceOrderBody)
        answer = await self._commands.place(
            lambda: PlaceOrderInput(
                user_id=body.user_id,
                instrument=body.asset,
                side=body.type.value,
                type=body.order_type.value,
                quantity=decimal_text(body.quantity) or "",
                price=decimal_text(body.price),
                stop_price=decimal_text(body.stop_price),
                time_in_force=body.time_in_force.value,
                expire_time=checked_moment("expire_time", body.expire_time),
                post_only=body.post_only,
                max_slippage_bps=body.max_slippage_bps or None,
                stp=None if body.stp is None else body.stp.value,
                client_order_id=body.client_order_id or None,
            ),
            self._wait_s(body.wait_for_outcome),
        )
        # A retry of an order already placed (same clientOrderId) creates nothing: 200.
        status = 200 if answer.duplicate else 201
        location = {"Location": f"/orders/{answer.order.order_id}"}
        return json_response(_answer_body(answer), status, location)

    async def get_order(self, request: Request) -> Response:
        order = await self._reads.order(
            request.path_params["orderId"],
            query_text(request, "userId"),
            query_text(request, "minPosition"),
        )
        return json_response(bodies.order_body(order))

    async def list_orders(self, request: Request) -> Response:
        status = query_text(request, "status") or None
        if status is not None and status not in OrderStatus.__members__:
            raise InvalidArgument.of("status", "MALFORMED", "status is not a known order status")
        orders, next_token = await self._reads.orders(
            query_text(request, "userId"),
            query_text(request, "asset"),
            status,
            query_int(request, "pageSize"),
            query_text(request, "pageToken"),
            query_text(request, "minPosition"),
        )
        return json_response(bodies.OrderPage([bodies.order_body(o) for o in orders], next_token))

    async def cancel_order(self, request: Request) -> Response:
        answer = await self._commands.cancel(
            query_text(request, "userId"),
            request.path_params["orderId"],
            self._wait_s(query_flag(request, "waitForOutcome")),
        )
        return json_response(_answer_body(answer))

    async def amend_order(self, request: Request) -> Response:
        body = await json_body(request, bodies.AmendOrderBody)
        answer = await self._commands.amend(
            body.user_id,
            request.path_params["orderId"],
            decimal_text(body.price),
            decimal_text(body.quantity),
            self._wait_s(body.wait_for_outcome),
        )
        return json_response(_answer_body(answer))

    async def cancel_all_orders(self, request: Request) -> Response:
        wait = query_flag(request, "waitForOutcome")
        written = await self._commands.cancel_all(
            query_text(request, "userId"), query_text(request, "asset")
        )
        if not wait:
            return json_response(bodies.CancelAllBody(written.position.to_token(), []))
        outcome = await self._commands.cancel_all_outcome(written, self._commands.default_wait_s)
        return json_response(
            bodies.CancelAllBody(
                outcome.position.to_token(), [bodies.order_body(o) for o in outcome.cancelled]
            )
        )

    # -- market data -----------------------------------------------------------------------

    async def list_instruments(self, request: Request) -> Response:
        return json_response(
            bodies.InstrumentList(
                [bodies.instrument_body(i) for i in self._reads.instrument_list()]
            )
        )

    async def get_book(self, request: Request) -> Response:
        book = await self._reads.book(
            request.path_params["instrument"],
            query_int(request, "depth"),
            query_text(request, "minPosition"),
        )
        return json_response(bodies.book_body(book))

    async def list_trades(self, request: Request) -> Response:
        trades, next_token = await self._reads.trades(
            request.path_params["instrument"],
            query_int(request, "pageSize"),
            query_text(request, "pageToken"),
            query_text(request, "minPosition"),
        )
        return json_response(bodies.TradePage([bodies.trade_body(t) for t in trades], next_token))

    # -- live feeds ------------------------------------------------------------------------

    async def stream_trades(self, request: Request) -> Response:
        # A browser's EventSource resumes with Last-Event-ID: the last trade's position.
        resume = query_text(request, "afterPosition") or request.headers.get("last-event-id", "")
        after: LogPosition | None = log_position_of("afterPosition", resume)
        return await self._streams.trades(request, request.path_params["instrument"], after)

    async def stream_book(self, request: Request) -> Response:
        return self._streams.book(
            request, request.path_params["instrument"], query_int(request, "depth")
        )

    async def stream_orders(self, request: Request) -> Response:
        return self._streams.orders(
            request, query_text(request, "userId"), query_text(request, "asset")
        )

    # -- the table -------------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        order_errors = (400, 401, 403, 404, 409, 429, 503, 504)
        return [
            Operation(
                "POST",
                "/orders",
                "placeOrder",
                _COMMANDS + "PlaceOrder",
                "Place an order (the key's account); 201 with the order as written (PENDING)",
                self.place_order,
                body=bodies.PlaceOrderBody,
                answer=bodies.CommandAnswerBody,
                success=201,
                charged=True,
                field_names=ORDER_FIELDS,
                errors=(400, 401, 403, 409, 429, 503, 504),
            ),
            Operation(
                "GET",
                "/orders",
                "listOrders",
                _QUERIES + "ListOrders",
                "The key's orders, most recent first, a page at a time",
                self.list_orders,
                params=(
                    Param("asset", "query", "only this instrument's orders"),
                    Param(
                        "status",
                        "query",
                        "only orders in this status",
                        choices=tuple(status.value for status in OrderStatus),
                    ),
                    *_PAGE,
                    _USER,
                    _MIN_POSITION,
                ),
                answer=bodies.OrderPage,
                field_names=ORDER_FIELDS,
                errors=(400, 401, 403, 503, 504),
            ),
            Operation(
                "DELETE",
                "/orders",
                "cancelAllOrders",
                _COMMANDS + "CancelAllOrders",
                "Kill switch: cancel all the key's open orders (optionally of one asset)",
                self.cancel_all_orders,
                params=(Param("asset", "query", "only this instrument's orders"), _USER, _WAIT),
                answer=bodies.CancelAllBody,
                charged=True,
                field_names=ORDER_FIELDS,
                errors=(400, 401, 403, 429, 503, 504),
            ),
            Operation(
                "GET",
                "/orders/{orderId}",
                "getOrder",
                _QUERIES + "GetOrder",
                "One order (another account's is 404)",
                self.get_order,
                params=(_ORDER_ID, _USER, _MIN_POSITION),
                answer=bodies.OrderBody,
                field_names=ORDER_FIELDS,
                errors=(400, 401, 403, 404, 503, 504),
            ),
            Operation(
                "DELETE",
                "/orders/{orderId}",
                "cancelOrder",
                _COMMANDS + "CancelOrder",
                "Cancel an open order (a closed one is 409)",
                self.cancel_order,
                params=(_ORDER_ID, _USER, _WAIT),
                answer=bodies.CommandAnswerBody,
                charged=True,
                field_names=ORDER_FIELDS,
                errors=order_errors,
            ),
            Operation(
                "PATCH",
                "/orders/{orderId}",
                "amendOrder",
                _COMMANDS + "AmendOrder",
                "Amend an open order's price and/or quantity",
                self.amend_order,
                params=(_ORDER_ID,),
                body=bodies.AmendOrderBody,
                answer=bodies.CommandAnswerBody,
                charged=True,
                field_names=ORDER_FIELDS,
                errors=order_errors,
            ),
            Operation(
                "GET",
                "/instruments",
                "listInstruments",
                _QUERIES + "ListInstruments",
                "The instruments traded here, with their tick and lot sizes",
                self.list_instruments,
                answer=bodies.InstrumentList,
                errors=(401, 403),
            ),
            Operation(
                "GET",
                "/books/{instrument}",
                "getOrderBook",
                _QUERIES + "GetOrderBook",
                "An instrument's book: price levels, best first, and the last price",
                self.get_book,
                params=(
                    _INSTRUMENT,
                    Param("depth", "query", "levels a side (0 or absent: all)", "integer"),
                    _MIN_POSITION,
                ),
                answer=bodies.BookBody,
                field_names=MARKET_FIELDS,
                errors=(400, 401, 403, 503, 504),
            ),
            Operation(
                "GET",
                "/trades/{instrument}",
                "listTrades",
                _QUERIES + "ListTrades",
                "An instrument's trades, most recent first, a page at a time",
                self.list_trades,
                params=(_INSTRUMENT, *_PAGE, _MIN_POSITION),
                answer=bodies.TradePage,
                field_names=MARKET_FIELDS,
                errors=(400, 401, 403, 503, 504),
            ),
            Operation(
                "GET",
                "/streams/trades/{instrument}",
                "streamTrades",
                _MARKET_DATA + "StreamTrades",
                "Live trades (server-sent events `trade`, id: the trade's log position); "
                "resumes after `afterPosition` or the Last-Event-ID header",
                self.stream_trades,
                params=(
                    _INSTRUMENT,
                    Param("afterPosition", "query", "resume after this trade's position"),
                    Param("Last-Event-ID", "header", "resume after this trade's position"),
                ),
                events={"trade": bodies.TradeBody},
                field_names=MARKET_FIELDS,
                errors=(400, 401, 403, 429, 503),
            ),
            Operation(
                "GET",
                "/streams/book/{instrument}",
                "streamOrderBook",
                _MARKET_DATA + "StreamOrderBook",
                "The book live (server-sent events): a `snapshot`, then `update`s whose "
                "sequences follow it without gap (id: the sequence)",
                self.stream_book,
                params=(
                    _INSTRUMENT,
                    Param("depth", "query", "levels a side in the snapshot (0: all)", "integer"),
                ),
                events={"snapshot": bodies.BookSnapshotEvent, "update": bodies.BookUpdateEvent},
                field_names=MARKET_FIELDS,
                errors=(400, 401, 403, 429, 503),
            ),
            Operation(
                "GET",
                "/streams/orders",
                "streamOrderUpdates",
                _MARKET_DATA + "StreamOrderUpdates",
                "The key's order changes live (server-sent events `order`)",
                self.stream_orders,
                params=(Param("asset", "query", "only this instrument's orders"), _USER),
                events={"order": bodies.OrderUpdateEvent},
                field_names=ORDER_FIELDS,
                errors=(400, 401, 403, 429),
            ),
        ]
