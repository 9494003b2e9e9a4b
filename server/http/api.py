"""The HTTP API's operations: orders (the seed's `POST /orders` and `GET /orders/{id}`,
cancel, amend, list, cancel-all), instruments, books, trades, balances, the ledger,
withdrawals, the admin's money calls (deposits, withdrawals, venue controls) and the live
feeds.

Each handler reads its request, calls the use case the gRPC servicer calls
(``server.order_commands``, ``server.order_reads``, ``server.account_reads``,
``server.transfers``, ``projections.live``) and renders the answer
(``server.http.bodies``). The door around every handler (``server.http.door``) checks
the key and the rate limit and turns refusals into answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from domain.instruments import InstrumentStatus
from domain.orders import OrderStatus
from server.account_reads import AccountReads
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
from server.trade_fees import trade_viewer
from server.transfers import Transfers

_COMMANDS = "/exchange.v1.OrderCommandService/"
_QUERIES = "/exchange.v1.OrderQueryService/"
_MARKET_DATA = "/exchange.v1.MarketDataService/"
_ACCOUNTS = "/exchange.v1.AccountService/"
_ADMIN = "/exchange.v1.AdminService/"

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
    "transfer_id": "transferId",
}
ORDER_FIELDS = {**_CAMEL, "side": "type", "type": "orderType", "instrument": "asset"}
MARKET_FIELDS = dict(_CAMEL)
MONEY_FIELDS = dict(_CAMEL)

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
    def __init__(
        self,
        commands: OrderCommands,
        reads: OrderReads,
        streams: EventStreams,
        accounts: AccountReads,
        transfers: Transfers,
    ) -> None:
        self._commands = commands
        self._reads = reads
        self._streams = streams
        self._accounts = accounts
        self._transfers = transfers

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
        listed = await self._reads.instruments_with_status()
        return json_response(
            bodies.InstrumentList([bodies.instrument_body(i, status) for i, status in listed])
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
        viewer = trade_viewer()  # a party sees its own fee; public market data none
        return json_response(
            bodies.TradePage([bodies.trade_body(t, viewer) for t in trades], next_token)
        )

    # -- accounts --------------------------------------------------------------------------

    async def get_balances(self, request: Request) -> Response:
        balances = await self._accounts.balances(
            query_text(request, "userId"), query_text(request, "minPosition")
        )
        text = self._accounts.text
        return json_response(bodies.BalanceList([bodies.balance_body(b, text) for b in balances]))

    async def list_ledger(self, request: Request) -> Response:
        entries, next_token = await self._accounts.ledger(
            query_text(request, "userId"),
            query_text(request, "asset"),
            query_int(request, "pageSize"),
            query_text(request, "pageToken"),
            query_text(request, "minPosition"),
        )
        text = self._accounts.text
        return json_response(
            bodies.LedgerPage([bodies.ledger_entry_body(e, text) for e in entries], next_token)
        )

    async def withdraw(self, request: Request) -> Response:
        body = await json_body(request, bodies.WithdrawBody)
        answer = await self._transfers.withdraw_own(
            body.user_id, body.asset, decimal_text(body.amount) or "", body.transfer_id
        )
        return json_response(bodies.transfer_body(answer))

    async def admin_deposit(self, request: Request) -> Response:
        body = await json_body(request, bodies.AdminTransferBody)
        answer = await self._transfers.deposit(
            body.user_id, body.asset, decimal_text(body.amount) or "", body.transfer_id
        )
        return json_response(bodies.transfer_body(answer))

    async def admin_withdraw(self, request: Request) -> Response:
        body = await json_body(request, bodies.AdminTransferBody)
        answer = await self._transfers.withdraw(
            body.user_id, body.asset, decimal_text(body.amount) or "", body.transfer_id
        )
        return json_response(bodies.transfer_body(answer))

    async def set_instrument_status(self, request: Request) -> Response:
        body = await json_body(request, bodies.InstrumentStatusBody)
        answer = await self._transfers.set_instrument_status(
            request.path_params["instrument"], body.status.value
        )
        return json_response(
            bodies.InstrumentStatusAnswer(
                answer.instrument, InstrumentStatus(answer.status), answer.position
            )
        )

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

    async def stream_balances(self, request: Request) -> Response:
        return self._streams.balances(request, self._accounts, query_text(request, "userId"))

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
                "The book live (server-sent events): a `snapshot` (with the instrument's "
                "status), then `update`s whose sequences follow it without gap (id: the "
                "sequence), and a `status` event when the instrument's status changes",
                self.stream_book,
                params=(
                    _INSTRUMENT,
                    Param("depth", "query", "levels a side in the snapshot (0: all)", "integer"),
                ),
                events={
                    "snapshot": bodies.BookSnapshotEvent,
                    "update": bodies.BookUpdateEvent,
                    "status": bodies.BookStatusEvent,
                },
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
            *self._money_operations(),
        ]

    def _money_operations(self) -> list[Operation]:
        # Not charged to the rate limit, as over gRPC (only order commands are).
        transfer_errors = (400, 401, 403, 409, 503, 504)
        return [
            Operation(
                "GET",
                "/balances",
                "getBalances",
                _ACCOUNTS + "GetBalances",
                "The key's balances (available and held), one per asset",
                self.get_balances,
                params=(_USER, _MIN_POSITION),
                answer=bodies.BalanceList,
                field_names=MONEY_FIELDS,
                errors=(400, 401, 403, 409, 503, 504),
            ),
            Operation(
                "GET",
                "/ledger",
                "listLedgerEntries",
                _ACCOUNTS + "ListLedgerEntries",
                "The key's ledger (every change of a balance, with its cause), most recent "
                "first, a page at a time",
                self.list_ledger,
                params=(
                    Param("asset", "query", "only this asset's entries"),
                    *_PAGE,
                    _USER,
                    _MIN_POSITION,
                ),
                answer=bodies.LedgerPage,
                field_names=MONEY_FIELDS,
                errors=(400, 401, 403, 409, 503, 504),
            ),
            Operation(
                "POST",
                "/withdrawals",
                "withdraw",
                _ACCOUNTS + "Withdraw",
                "Withdraw from the key's own available funds; answered with the engine's "
                "decision (REJECTED with INSUFFICIENT_FUNDS when the funds are held)",
                self.withdraw,
                body=bodies.WithdrawBody,
                answer=bodies.TransferBody,
                field_names=MONEY_FIELDS,
                errors=transfer_errors,
            ),
            Operation(
                "POST",
                "/admin/deposits",
                "adminDeposit",
                _ADMIN + "Deposit",
                "Deposit into any account (admin keys only)",
                self.admin_deposit,
                body=bodies.AdminTransferBody,
                answer=bodies.TransferBody,
                field_names=MONEY_FIELDS,
                errors=transfer_errors,
            ),
            Operation(
                "POST",
                "/admin/withdrawals",
                "adminWithdraw",
                _ADMIN + "Withdraw",
                "Withdraw from any account (admin keys only)",
                self.admin_withdraw,
                body=bodies.AdminTransferBody,
                answer=bodies.TransferBody,
                field_names=MONEY_FIELDS,
                errors=transfer_errors,
            ),
            Operation(
                "POST",
                "/admin/instruments/{instrument}/status",
                "setInstrumentStatus",
                _ADMIN + "SetInstrumentStatus",
                "Halt, cancel-only or resume an instrument (admin keys only)",
                self.set_instrument_status,
                params=(_INSTRUMENT,),
                body=bodies.InstrumentStatusBody,
                answer=bodies.InstrumentStatusAnswer,
                field_names=MONEY_FIELDS,
                errors=(400, 401, 403, 503, 504),
            ),
            Operation(
                "GET",
                "/streams/balances",
                "streamBalanceUpdates",
                _ACCOUNTS + "StreamBalanceUpdates",
                "The key's balances live (server-sent events): a `snapshot` of every "
                "balance, then a `balance` after each change",
                self.stream_balances,
                params=(_USER,),
                events={
                    "snapshot": bodies.BalanceSnapshotEvent,
                    "balance": bodies.BalanceBody,
                },
                field_names=MONEY_FIELDS,
                errors=(400, 401, 403, 409, 429, 503),
            ),
        ]
