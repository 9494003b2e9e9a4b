"""A small real grpc.aio server with canned answers, for testing the Python client and CLI.

It implements the generated servicer bases of every exchange.v1 service on a loopback port
(no mock of gRPC): the client under test goes through real HTTP/2, real serialisation and
real status trailers. Answers are fixed data chosen to exercise every conversion; a few
magic inputs trigger each error status, with the rich details the real service sends.

Magic inputs of the CLI tests:
- commands with `wait_for_outcome` answer the engine's outcome at once, at position
  `<position>-answer`, unless `commands.engine_answers` is False (then DEADLINE_EXCEEDED):
  a placed order reads PARTIALLY_FILLED; a cancel of an id starting with "cancel-me" reads
  CANCELLED, of one starting with "filled-first" FILLED with the cancel rejected
  (ORDER_CLOSED: the fill came first); an amend of an id starting with "filled-first" is
  rejected the same way;
- users starting with "kill" have three open orders (`<user>-1` a BTC-USD stop waiting,
  `<user>-2` PENDING on BTC-USD, `<user>-3` OPEN on ETH-USD), and after their cancel-all
  `-1` and `-3` read CANCELLED with reason MASS_CANCEL and `-2` FILLED (a cancel-all that
  waits answers `-3` and `-1` as the orders it cancelled);
- GetOrder of "hostile" answers ids full of terminal escapes; ids starting with "missing"
  are NOT_FOUND, quoting the id;
- streams named "endless..." park after their messages until the client cancels;
  "lagging..." trade streams and order updates of "lagging..." users are dropped with
  ABORTED after their first two messages, and a new subscription repeats the second one
  before a third; "closing..." books end after an update, and every later subscription
  is refused with UNAVAILABLE (a service shutting down); the "hostile" trade stream sends
  a trade whose ids hold terminal escapes.

AdminService issues any key it is asked for (`key-<n>`, whole key `exk_key-<n>_secret-<n>`)
to any caller, and the order entry records the `authorization` each user's orders came
with (`commands.authorization_by_user`), so the load generator's keys can be checked.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients.generated.exchange.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    market_data_service_pb2,
    market_data_service_pb2_grpc,
    order_command_service_pb2,
    order_command_service_pb2_grpc,
    order_query_service_pb2,
    order_query_service_pb2_grpc,
    types_pb2,
)

CREATED_AT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
UPDATED_AT = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
EXECUTED_AT = datetime(2026, 1, 2, 3, 4, 7, 500000, tzinfo=UTC)


def timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def canned_order(order_id: str = "o-1", **overrides: object) -> types_pb2.Order:
    """A fully populated order (partially filled limit buy)."""
    fields: dict[str, object] = {
        "order_id": order_id,
        "client_order_id": "c-1",
        "user_id": "alice",
        "instrument": "BTC-USD",
        "side": types_pb2.SIDE_BUY,
        "type": types_pb2.ORDER_TYPE_LIMIT,
        "price": "45000.00",
        "quantity": "1.5000",
        "filled_quantity": "0.5",
        "average_price": "44999.50",
        "status": types_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        "time_in_force": types_pb2.TIME_IN_FORCE_GTC,
        "created_at": timestamp(CREATED_AT),
        "updated_at": timestamp(UPDATED_AT),
    }
    fields.update(overrides)
    return types_pb2.Order(**fields)  # type: ignore[arg-type]


def canned_trade(trade_id: str = "BTC-USD-1", **overrides: object) -> types_pb2.Trade:
    fields: dict[str, object] = {
        "trade_id": trade_id,
        "instrument": "BTC-USD",
        "price": "44999.50",
        "quantity": "0.5",
        "maker_order_id": "o-0",
        "taker_order_id": "o-1",
        "taker_side": types_pb2.SIDE_BUY,
        "executed_at": timestamp(EXECUTED_AT),
    }
    fields.update(overrides)
    return types_pb2.Trade(**fields)  # type: ignore[arg-type]


# Ids a hostile client could have written: ANSI escapes (clear screen, colour), BEL, an
# RTL override, a newline, a backslash, rich markup and an emoji code.
HOSTILE_ID = "x\x1b[2J\x1b[31mred\x07\u202eevil\nnext\\[bold]:smile:"


def kill_switch_orders(user_id: str) -> list[types_pb2.Order]:
    """The open orders of a "kill..." user, most recent first."""
    return [
        canned_order(
            f"{user_id}-3",
            user_id=user_id,
            instrument="ETH-USD",
            price="100.00",
            quantity="2.000",
            filled_quantity="0",
            average_price="",
            status=types_pb2.ORDER_STATUS_OPEN,
        ),
        canned_order(
            f"{user_id}-2",
            user_id=user_id,
            filled_quantity="0",
            average_price="",
            status=types_pb2.ORDER_STATUS_PENDING,
        ),
        canned_order(
            f"{user_id}-1",
            user_id=user_id,
            type=types_pb2.ORDER_TYPE_STOP_LIMIT,
            stop_price="44000.00",
            filled_quantity="0",
            average_price="",
            status=types_pb2.ORDER_STATUS_TRIGGER_PENDING,
        ),
    ]


def closed(
    order: types_pb2.Order, status: int, reason: str = "", **fields: object
) -> types_pb2.Order:
    """A copy of `order` closed with `status` and `reason`."""
    copy = types_pb2.Order()
    copy.CopyFrom(order)
    copy.status = status  # type: ignore[assignment]
    copy.reason = reason
    for name, value in fields.items():
        setattr(copy, name, value)
    return copy


def _bad_request_status(violations: list[tuple[str, str, str]]) -> grpc.Status:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=field, description=description, reason=reason
            )
            for field, description, reason in violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid order", details=[detail])
    )


def _error_info_status(code: int, message: str, reason: str) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain="exchange", metadata={"order_id": "x"})
    )
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[detail]))


def _violations_of(
    request: order_command_service_pb2.PlaceOrderRequest,
) -> list[tuple[str, str, str]]:
    """The canned validation: quantity required, price on a 0.01 grid."""
    violations = []
    if not request.quantity:
        violations.append(("quantity", "quantity is required", "REQUIRED"))
    if request.price and len(request.price.partition(".")[2]) > 2:
        violations.append(("price", "price 0.001 is not a multiple of 0.01", "OFF_TICK_GRID"))
    return violations


class CannedCommands(order_command_service_pb2_grpc.OrderCommandServiceServicer):
    def __init__(self, queries: CannedQueries) -> None:
        self.queries = queries
        self.placed: list[order_command_service_pb2.PlaceOrderRequest] = []
        self.cancel_all_requests: list[order_command_service_pb2.CancelAllOrdersRequest] = []
        self.orders_by_client_id: dict[tuple[str, str], types_pb2.Order] = {}
        self.engine_answers = True  # False: a command that waits runs out of time
        # The authorization metadata each user's orders came with.
        self.authorization_by_user: defaultdict[str, set[str]] = defaultdict(set)

    def _note_authorization(self, user_id: str, context) -> None:  # type: ignore[no-untyped-def]
        for key, value in context.invocation_metadata():
            if key == "authorization":
                self.authorization_by_user[user_id].add(value)

    async def _unanswered(self, request: object, context) -> None:  # type: ignore[no-untyped-def]
        if getattr(request, "wait_for_outcome", False) and not self.engine_answers:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the engine has not answered yet"
            )

    def _place(
        self, request: order_command_service_pb2.PlaceOrderRequest
    ) -> order_command_service_pb2.PlaceOrderResponse:
        key = (request.user_id, request.client_order_id)
        if request.client_order_id and key in self.orders_by_client_id:
            return order_command_service_pb2.PlaceOrderResponse(
                order=self.orders_by_client_id[key], position="p-dup", duplicate=True
            )
        self.placed.append(request)
        order = types_pb2.Order(
            order_id=f"o-{len(self.placed)}",
            client_order_id=request.client_order_id,
            user_id=request.user_id,
            instrument=request.instrument,
            side=request.side,
            type=request.type,
            price=request.price,
            quantity=request.quantity,
            filled_quantity="0",
            status=types_pb2.ORDER_STATUS_PENDING,
            time_in_force=request.time_in_force,
            stop_price=request.stop_price,
            post_only=request.post_only,
            created_at=timestamp(CREATED_AT),
            updated_at=timestamp(CREATED_AT),
        )
        if request.HasField("expire_time"):
            order.expire_time.CopyFrom(request.expire_time)
        if request.client_order_id:
            self.orders_by_client_id[key] = order
        if request.wait_for_outcome:
            return order_command_service_pb2.PlaceOrderResponse(
                order=canned_order(order.order_id), position=f"p-{len(self.placed)}-answer"
            )
        return order_command_service_pb2.PlaceOrderResponse(
            order=order, position=f"p-{len(self.placed)}"
        )

    async def PlaceOrder(self, request, context):  # type: ignore[no-untyped-def]
        violations = _violations_of(request)
        if violations:
            await context.abort_with_status(_bad_request_status(violations))
        await self._unanswered(request, context)
        self._note_authorization(request.user_id, context)
        return self._place(request)

    async def CancelAllOrders(self, request, context):  # type: ignore[no-untyped-def]
        self.cancel_all_requests.append(request)
        await self._unanswered(request, context)
        cancelled: list[types_pb2.Order] = []
        if request.user_id.startswith("kill"):
            for order in kill_switch_orders(request.user_id):
                if request.instrument and order.instrument != request.instrument:
                    continue
                if order.status == types_pb2.ORDER_STATUS_PENDING:
                    outcome = closed(
                        order,
                        types_pb2.ORDER_STATUS_FILLED,
                        filled_quantity=order.quantity,
                        average_price="45000.005",
                    )
                    self.queries.script(order, outcome)
                elif order.status == types_pb2.ORDER_STATUS_OPEN:
                    outcome = closed(order, types_pb2.ORDER_STATUS_CANCELLED, "MASS_CANCEL")
                    self.queries.script(order, outcome)
                    cancelled.append(outcome)
                else:
                    outcome = closed(order, types_pb2.ORDER_STATUS_CANCELLED, "MASS_CANCEL")
                    self.queries.script(outcome)
                    cancelled.append(outcome)
        if request.wait_for_outcome:
            return order_command_service_pb2.CancelAllOrdersResponse(
                position="p-cancel-all-answer", cancelled_orders=cancelled
            )
        return order_command_service_pb2.CancelAllOrdersResponse(position="p-cancel-all")

    async def CancelOrder(self, request, context):  # type: ignore[no-untyped-def]
        if request.order_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "order missing not found")
        if request.user_id != "alice":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your order")
        if request.order_id == "closed":
            await context.abort_with_status(
                _error_info_status(
                    code_pb2.FAILED_PRECONDITION, "order closed is FILLED", "ORDER_CLOSED"
                )
            )
        before = canned_order(request.order_id)
        await self._unanswered(request, context)
        if not request.wait_for_outcome:
            return order_command_service_pb2.CancelOrderResponse(order=before, position="p-cancel")
        if request.order_id.startswith("filled-first"):
            return order_command_service_pb2.CancelOrderResponse(
                order=closed(before, types_pb2.ORDER_STATUS_FILLED, filled_quantity="1.5"),
                position="p-cancel-answer",
                rejection_reason="ORDER_CLOSED",
            )
        return order_command_service_pb2.CancelOrderResponse(
            order=closed(before, types_pb2.ORDER_STATUS_CANCELLED, "USER_REQUESTED"),
            position="p-cancel-answer",
        )

    async def AmendOrder(self, request, context):  # type: ignore[no-untyped-def]
        order = canned_order(request.order_id)
        await self._unanswered(request, context)
        if request.wait_for_outcome and request.order_id.startswith("filled-first"):
            return order_command_service_pb2.AmendOrderResponse(
                order=closed(order, types_pb2.ORDER_STATUS_FILLED, filled_quantity="1.5"),
                position="p-amend-answer",
                rejection_reason="ORDER_CLOSED",
            )
        if request.price:
            order.price = request.price
        if request.quantity:
            order.quantity = request.quantity
        position = "p-amend-answer" if request.wait_for_outcome else "p-amend"
        return order_command_service_pb2.AmendOrderResponse(order=order, position=position)

    async def StreamPlaceOrders(self, request_iterator, context):  # type: ignore[no-untyped-def]
        # Answers go out in pairs, second request first, to prove the client pairs them by
        # request_id rather than by arrival order.
        held: order_command_service_pb2.StreamPlaceOrdersResponse | None = None
        async for request in request_iterator:
            self._note_authorization(request.order.user_id, context)
            violations = _violations_of(request.order)
            if violations:
                answer = order_command_service_pb2.StreamPlaceOrdersResponse(
                    request_id=request.request_id,
                    error=types_pb2.CommandError(
                        code=code_pb2.INVALID_ARGUMENT,
                        message="invalid order",
                        field_violations=[
                            types_pb2.FieldViolation(field=f, description=d, reason=r)
                            for f, d, r in violations
                        ],
                    ),
                )
            else:
                answer = order_command_service_pb2.StreamPlaceOrdersResponse(
                    request_id=request.request_id, placed=self._place(request.order)
                )
            if request.order.user_id == "stream-breaker":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
            if held is None:
                held = answer
            else:
                yield answer
                yield held
                held = None
        if held is not None:
            yield held


class CannedQueries(order_query_service_pb2_grpc.OrderQueryServiceServicer):
    def __init__(self) -> None:
        self.requests: list[object] = []
        self.pending_reads_left = 0
        # Successive GetOrder answers of an order id; the last one stays.
        self.scripted_orders: dict[str, list[types_pb2.Order]] = {}

    def script(self, *answers: types_pb2.Order) -> None:
        """GetOrder of these orders' id answers each of them in turn, then the last."""
        self.scripted_orders[answers[0].order_id] = list(answers)

    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        if request.min_position == "p-future":
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "views behind p-future")
        if request.order_id.startswith("missing"):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        scripted = self.scripted_orders.get(request.order_id)
        if scripted:
            answer = scripted.pop(0) if len(scripted) > 1 else scripted[0]
            return order_query_service_pb2.GetOrderResponse(order=answer)
        if request.order_id == "hostile":
            return order_query_service_pb2.GetOrderResponse(
                order=canned_order(
                    HOSTILE_ID, client_order_id=HOSTILE_ID, user_id=HOSTILE_ID, reason=HOSTILE_ID
                )
            )
        if self.pending_reads_left > 0:
            # The engine "has not processed it yet" for this many reads.
            self.pending_reads_left -= 1
            return order_query_service_pb2.GetOrderResponse(
                order=canned_order(request.order_id, status=types_pb2.ORDER_STATUS_PENDING)
            )
        return order_query_service_pb2.GetOrderResponse(order=canned_order(request.order_id))

    async def ListOrders(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        if request.user_id.startswith("kill"):
            return order_query_service_pb2.ListOrdersResponse(
                orders=[
                    order
                    for order in kill_switch_orders(request.user_id)
                    if request.status in (0, order.status)
                    and request.instrument in ("", order.instrument)
                ]
            )
        if not request.page_token:
            return order_query_service_pb2.ListOrdersResponse(
                orders=[canned_order("o-2"), canned_order("o-1")], next_page_token="page-2"
            )
        return order_query_service_pb2.ListOrdersResponse(orders=[canned_order("o-0")])

    async def GetOrderBook(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return order_query_service_pb2.GetOrderBookResponse(
            instrument=request.instrument,
            bids=[
                types_pb2.PriceLevel(price="44999.50", quantity="1.2500", order_count=2),
                types_pb2.PriceLevel(price="44990.00", quantity="3", order_count=1),
            ],
            asks=[types_pb2.PriceLevel(price="45001.00", quantity="0.0001", order_count=1)],
            sequence=42,
            last_price="45000.00",
        )

    async def ListTrades(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return order_query_service_pb2.ListTradesResponse(
            trades=[canned_trade("BTC-USD-2"), canned_trade("BTC-USD-1")],
            next_page_token="",
        )

    async def ListInstruments(self, request, context):  # type: ignore[no-untyped-def]
        return order_query_service_pb2.ListInstrumentsResponse(
            instruments=[
                types_pb2.Instrument(symbol="BTC-USD", tick_size="0.01", lot_size="0.0001"),
                types_pb2.Instrument(
                    symbol="ETH-USD", tick_size="0.01", lot_size="0.001", min_quantity="0.01"
                ),
            ]
        )


class CannedMarketData(market_data_service_pb2_grpc.MarketDataServiceServicer):
    def __init__(self) -> None:
        self.trade_streams_ended: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.book_subscriptions: Counter[str] = Counter()
        self.trade_subscriptions: Counter[str] = Counter()
        self.trade_after_positions: defaultdict[str, list[str]] = defaultdict(list)
        self.order_update_subscriptions: Counter[str] = Counter()

    async def StreamTrades(self, request, context):  # type: ignore[no-untyped-def]
        # Instruments named "endless..." park after two trades until the client cancels;
        # the handler records that it ended, however the cancellation reached it.
        self.trade_subscriptions[request.instrument] += 1
        self.trade_after_positions[request.instrument].append(request.after_position)
        lagging = request.instrument.startswith("lagging")
        trade_ids = ["BTC-USD-1", "BTC-USD-2"]
        if lagging and self.trade_subscriptions[request.instrument] > 1:
            trade_ids = ["BTC-USD-2", "BTC-USD-3"]
        try:
            if request.instrument == "hostile":
                yield market_data_service_pb2.StreamTradesResponse(
                    trade=canned_trade(
                        HOSTILE_ID,
                        instrument=HOSTILE_ID,
                        maker_order_id=HOSTILE_ID,
                        taker_order_id=HOSTILE_ID,
                    ),
                    position="p-hostile",
                )
                return
            for trade_id in trade_ids:
                yield market_data_service_pb2.StreamTradesResponse(
                    trade=canned_trade(trade_id), position=f"p-{trade_id}"
                )
            if lagging and self.trade_subscriptions[request.instrument] == 1:
                await context.abort(grpc.StatusCode.ABORTED, "subscriber lagged; resubscribe")
            if request.instrument.startswith(("endless", "lagging")):
                await asyncio.Event().wait()
        finally:
            self.trade_streams_ended[request.instrument].set()

    async def StreamOrderBook(self, request, context):  # type: ignore[no-untyped-def]
        closing = request.instrument.startswith("closing")
        if closing and self.book_subscriptions[request.instrument] > 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is shutting down")
        yield market_data_service_pb2.StreamOrderBookResponse(
            instrument=request.instrument,
            sequence=7,
            snapshot=market_data_service_pb2.OrderBookSnapshot(
                bids=[types_pb2.PriceLevel(price="100.00", quantity="2", order_count=1)],
                asks=[types_pb2.PriceLevel(price="101.00", quantity="1", order_count=1)],
            ),
            position="p-7",
        )
        # "GAPPY": the first subscription skips sequence 8 (lost update), later ones do not.
        self.book_subscriptions[request.instrument] += 1
        skip = request.instrument == "GAPPY" and self.book_subscriptions["GAPPY"] == 1
        yield market_data_service_pb2.StreamOrderBookResponse(
            instrument=request.instrument,
            sequence=9 if skip else 8,
            update=market_data_service_pb2.OrderBookUpdate(
                changes=[
                    market_data_service_pb2.PriceLevelChange(
                        side=types_pb2.SIDE_SELL, price="101.00", quantity="0", order_count=0
                    ),
                    market_data_service_pb2.PriceLevelChange(
                        side=types_pb2.SIDE_BUY, price="100.00", quantity="1.5", order_count=1
                    ),
                ]
            ),
            position="p-8",
        )
        if request.instrument.startswith("endless"):
            await asyncio.Event().wait()

    async def StreamOrderUpdates(self, request, context):  # type: ignore[no-untyped-def]
        self.order_update_subscriptions[request.user_id] += 1
        lagging = request.user_id.startswith("lagging")
        updates = [
            market_data_service_pb2.StreamOrderUpdatesResponse(
                order=canned_order("o-1"),
                event_type="OrderPartiallyFilled",
                trade=canned_trade(),
                position="p-9",
            ),
            market_data_service_pb2.StreamOrderUpdatesResponse(
                order=canned_order("o-3", status=types_pb2.ORDER_STATUS_OPEN, filled_quantity="0"),
                event_type="OrderAccepted",
                position="p-10",
            ),
        ]
        if lagging and self.order_update_subscriptions[request.user_id] > 1:
            updates = [
                updates[1],
                market_data_service_pb2.StreamOrderUpdatesResponse(
                    order=closed(
                        canned_order("o-3"), types_pb2.ORDER_STATUS_CANCELLED, "USER_REQUESTED"
                    ),
                    event_type="OrderCancelled",
                    position="p-11",
                ),
            ]
        for update in updates:
            yield update
        if request.user_id == "slow" or (
            lagging and self.order_update_subscriptions[request.user_id] == 1
        ):
            await context.abort(grpc.StatusCode.ABORTED, "subscriber lagged; resubscribe")
        if request.user_id.startswith(("endless", "lagging")):
            await asyncio.Event().wait()


class CannedDiagnostics(diagnostics_service_pb2_grpc.DiagnosticsServiceServicer):
    def __init__(self) -> None:
        self.last_metadata: dict[str, str] = {}

    async def Ping(self, request, context):  # type: ignore[no-untyped-def]
        self.last_metadata = {key: value for key, value in context.invocation_metadata()}
        return diagnostics_service_pb2.PingResponse()


class CannedAdmin(admin_service_pb2_grpc.AdminServiceServicer):
    """Issues numbered keys to anyone; remembers what it issued and revoked."""

    def __init__(self) -> None:
        self.issued: dict[str, admin_service_pb2.IssueApiKeyRequest] = {}
        self.api_keys: dict[str, str] = {}
        self.revoked: list[str] = []

    async def IssueApiKey(self, request, context):  # type: ignore[no-untyped-def]
        key_id = f"key-{len(self.issued) + 1}"
        self.issued[key_id] = request
        self.api_keys[key_id] = f"exk_{key_id}_secret-{len(self.issued)}"
        return admin_service_pb2.IssueApiKeyResponse(key_id=key_id, api_key=self.api_keys[key_id])

    async def RevokeApiKey(self, request, context):  # type: ignore[no-untyped-def]
        if request.key_id not in self.issued:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no key {request.key_id}")
        self.revoked.append(request.key_id)
        return admin_service_pb2.RevokeApiKeyResponse()

    async def ListApiKeys(self, request, context):  # type: ignore[no-untyped-def]
        return admin_service_pb2.ListApiKeysResponse(
            keys=[
                admin_service_pb2.ApiKeyInfo(
                    key_id=key_id,
                    user_id=issued.user_id,
                    scopes=issued.scopes,
                    created_at=Timestamp(seconds=1767323045),
                    revoked=key_id in self.revoked,
                )
                for key_id, issued in self.issued.items()
                if issued.user_id == request.user_id or not request.user_id
            ]
        )


class CannedExchange:
    """The running canned server: its address and the servicers (to inspect requests)."""

    def __init__(
        self,
        target: str,
        commands: CannedCommands,
        queries: CannedQueries,
        market_data: CannedMarketData,
        diagnostics: CannedDiagnostics,
        admin: CannedAdmin,
    ) -> None:
        self.target = target
        self.admin = admin
        self.diagnostics = diagnostics
        self.commands = commands
        self.queries = queries
        self.market_data = market_data


async def start_canned_exchange() -> tuple[grpc.aio.Server, CannedExchange]:
    """Start the canned servicers on a free loopback port."""
    server = grpc.aio.server()
    queries, market_data = CannedQueries(), CannedMarketData()
    commands = CannedCommands(queries)
    order_command_service_pb2_grpc.add_OrderCommandServiceServicer_to_server(commands, server)
    order_query_service_pb2_grpc.add_OrderQueryServiceServicer_to_server(queries, server)
    market_data_service_pb2_grpc.add_MarketDataServiceServicer_to_server(market_data, server)
    diagnostics = CannedDiagnostics()
    diagnostics_service_pb2_grpc.add_DiagnosticsServiceServicer_to_server(diagnostics, server)
    admin = CannedAdmin()
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, CannedExchange(
        f"127.0.0.1:{port}", commands, queries, market_data, diagnostics, admin
    )
