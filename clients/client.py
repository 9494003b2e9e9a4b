"""Typed asyncio client of the exchange's gRPC API (grpc.aio).

    async with ExchangeClient.connect("localhost:50051", api_key=key) as exchange:
        placed = await exchange.place_order(
            NewOrder(user_id="u1", instrument="BTC-USD", side=Side.BUY,
                     price=Decimal("45000.00"), quantity=Decimal("1.5"))
        )
        order = await exchange.get_order(placed.order.order_id, min_position=placed.position)

Every RPC of exchange.v1 has a method here taking and returning the typed values of
`clients.models` (Decimal amounts, enums, aware datetimes). A refused or failed call raises
an `clients.errors.ExchangeError` subclass carrying the status code and the decoded rich
details. Server streams are async iterators; leaving the `async for` cancels the call.
`order_entry()` opens the bidirectional StreamPlaceOrders stream for high-rate entry.

Every call (unary and streams) carries the client's API key as gRPC metadata
`authorization: Bearer <key>`; a request's `user_id` may be left empty (the key's account).
With an admin key, `issue_api_key`, `revoke_api_key` and `list_api_keys` call AdminService.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from clients.accounts import (
    INSTRUMENT_STATUS_NAMES,
    INSTRUMENT_STATUS_VALUES,
    Balance,
    InstrumentStatusSet,
    LedgerPage,
    Transfer,
    balance_from_wire,
    ledger_entry_from_wire,
    transfer_from_wire,
)
from clients.conversions import (
    api_key_from_wire,
    book_message_from_wire,
    cancel_all_result_from_wire,
    command_result_from_wire,
    decimal_to_wire,
    instrument_from_wire,
    new_order_to_wire,
    order_book_from_wire,
    order_from_wire,
    order_update_from_wire,
    place_result_from_wire,
    trade_event_from_wire,
    trade_from_wire,
)
from clients.enums import OrderStatus, Scope, to_wire
from clients.errors import ExchangeError, error_from_command_error, error_from_rpc, make_error
from clients.generated.exchange.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
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
)
from clients.models import (
    ApiKey,
    BookSnapshot,
    BookUpdate,
    CancelAllResult,
    CommandResult,
    Instrument,
    IssuedApiKey,
    NewOrder,
    Order,
    OrderBook,
    OrdersPage,
    OrderUpdate,
    PlaceResult,
    TradeEvent,
    TradesPage,
)

DEFAULT_TARGET = "localhost:50051"
# Unary calls get this deadline unless told otherwise: a query with `min_position` waits
# for the views up to its deadline, so it must never be unbounded.
DEFAULT_TIMEOUT_SECONDS = 10.0

Converted = TypeVar("Converted")
# grpc's metadata: (key, value) pairs.
Metadata = tuple[tuple[str, str], ...]


def bearer_metadata(api_key: str) -> Metadata | None:
    """The metadata that shows `api_key` to the service; None without a key."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else None


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS connection: `ca_file` verifies the service's certificate (the
    system's roots when None); `cert_file` + `key_file` are this client's certificate, for
    a service that requires one (mutual TLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs its key, and the key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca_file),
            private_key=_pem(self.key_file),
            certificate_chain=_pem(self.cert_file),
        )


def _pem(path: Path | None) -> bytes | None:
    """A PEM file's bytes; ValueError naming the file when it cannot be read (a caller's
    mistake to report in one line, not a crash)."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read TLS file {path}: {error.strerror or error}") from None


class ExchangeClient:
    """All exchange.v1 RPCs over one grpc.aio channel. Safe to share between tasks."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        api_key: str = "",
    ) -> None:
        """A client on `channel`; several clients (e.g. one per API key) may share one."""
        self._channel = channel
        self._timeout = timeout
        self._metadata = bearer_metadata(api_key)
        self._commands = order_command_service_pb2_grpc.OrderCommandServiceStub(channel)
        self._queries = order_query_service_pb2_grpc.OrderQueryServiceStub(channel)
        self._market_data = market_data_service_pb2_grpc.MarketDataServiceStub(channel)
        self._diagnostics = diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        self._accounts = account_service_pb2_grpc.AccountServiceStub(channel)

    @classmethod
    def connect(
        cls,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        traced: bool = False,
        tls: TlsFiles | None = None,
        api_key: str = "",
    ) -> ExchangeClient:
        """A client on a new channel to `target` ("host:port"): plaintext, or TLS with
        `tls` (see TlsFiles), calling with `api_key` (without one, only health, reflection
        and, where the service makes it public, market data answer).

        `traced=True` propagates the caller's OpenTelemetry trace to the service (its
        PlaceOrder span, and through the log the engine's and the views' spans, join the
        caller's trace); it needs a configured OpenTelemetry SDK in the calling program.
        """
        interceptors = None
        if traced:
            from opentelemetry.instrumentation.grpc import aio_client_interceptors

            interceptors = aio_client_interceptors()
        if tls is None:
            channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
        else:
            channel = grpc.aio.secure_channel(target, tls.credentials(), interceptors=interceptors)
        return cls(channel, timeout=timeout, api_key=api_key)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> ExchangeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the channel is connected; UnavailableError after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise make_error(
                grpc.StatusCode.UNAVAILABLE, f"not connected after {timeout} s"
            ) from None

    # --- diagnostics ---------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = None) -> None:
        """The no-op call: succeeds when the service answers."""
        await self._unary(
            self._diagnostics.Ping, diagnostics_service_pb2.PingRequest(), timeout, _ignore
        )

    # --- commands ------------------------------------------------------------------------

    async def place_order(
        self, order: NewOrder, *, wait: bool = False, timeout: float | None = None
    ) -> PlaceResult:
        """Place an order; the returned order is PENDING (or the original on a retry).
        With `wait`, the answer comes once the engine has handled the order and the views
        hold its result (within `timeout`, else DeadlineExceededError: the order is still
        placed): the order as the engine left it, and the position of that answer."""
        request = new_order_to_wire(order)
        request.wait_for_outcome = wait
        return await self._unary(
            self._commands.PlaceOrder, request, timeout, place_result_from_wire
        )

    async def cancel_order(
        self, user_id: str, order_id: str, *, wait: bool = False, timeout: float | None = None
    ) -> CommandResult:
        """Request a cancel; the order as it was when written. With `wait`, the order after
        the engine's answer (CANCELLED, or as it stands with `rejection_reason` set when
        the engine rejected the cancel, e.g. the order filled first)."""
        request = order_command_service_pb2.CancelOrderRequest(
            user_id=user_id, order_id=order_id, wait_for_outcome=wait
        )
        return await self._unary(
            self._commands.CancelOrder, request, timeout, command_result_from_wire
        )

    async def cancel_all_orders(
        self,
        user_id: str,
        *,
        instrument: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CancelAllResult:
        """A user's kill switch: cancel every open order and waiting stop of `user_id`, on
        `instrument` or on all. Returns the log position of the request; the engine's
        cancels (reason MASS_CANCEL) follow it. With `wait`, the answer comes once the
        engine has handled the request: the position of its answer and the orders it
        cancelled."""
        request = order_command_service_pb2.CancelAllOrdersRequest(
            user_id=user_id, instrument=instrument or "", wait_for_outcome=wait
        )
        return await self._unary(
            self._commands.CancelAllOrders, request, timeout, cancel_all_result_from_wire
        )

    async def amend_order(
        self,
        user_id: str,
        order_id: str,
        *,
        price: Decimal | str | None = None,
        quantity: Decimal | str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CommandResult:
        """Cancel/replace. `quantity` is the new TOTAL quantity; None keeps a field as is.
        `price` and `quantity` take Decimals or decimal strings. With `wait`, the order
        after the engine's answer (`rejection_reason` set when it rejected the amend)."""
        request = order_command_service_pb2.AmendOrderRequest(
            user_id=user_id,
            order_id=order_id,
            price=decimal_to_wire(price),
            quantity=decimal_to_wire(quantity),
            wait_for_outcome=wait,
        )
        return await self._unary(
            self._commands.AmendOrder, request, timeout, command_result_from_wire
        )

    @asynccontextmanager
    async def order_entry(self) -> AsyncIterator[OrderEntryStream]:
        """Open a StreamPlaceOrders stream; closed (half-close, then drained) on exit."""
        entry = OrderEntryStream(self._commands.StreamPlaceOrders(metadata=self._metadata))
        try:
            yield entry
        finally:
            await entry.close()

    # --- queries -------------------------------------------------------------------------

    async def get_order(
        self,
        order_id: str,
        *,
        user_id: str = "",
        min_position: str = "",
        timeout: float | None = None,
    ) -> Order:
        request = order_query_service_pb2.GetOrderRequest(
            order_id=order_id, user_id=user_id, min_position=min_position
        )
        return await self._unary(
            self._queries.GetOrder, request, timeout, lambda reply: order_from_wire(reply.order)
        )

    async def list_orders(
        self,
        user_id: str,
        *,
        instrument: str = "",
        status: OrderStatus = OrderStatus.UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
        min_position: str = "",
        timeout: float | None = None,
    ) -> OrdersPage:
        """One page of a user's orders, most recent first; UNSPECIFIED status means any."""
        request = order_query_service_pb2.ListOrdersRequest(
            user_id=user_id,
            instrument=instrument,
            status=to_wire(status),  # type: ignore[arg-type]
            page_size=page_size,
            page_token=page_token,
            min_position=min_position,
        )
        return await self._unary(
            self._queries.ListOrders,
            request,
            timeout,
            lambda reply: OrdersPage(
                orders=tuple(order_from_wire(order) for order in reply.orders),
                next_page_token=reply.next_page_token,
            ),
        )

    async def get_order_book(
        self,
        instrument: str,
        *,
        depth: int = 0,
        min_position: str = "",
        timeout: float | None = None,
    ) -> OrderBook:
        """Aggregated levels, best first; depth 0 means the whole book."""
        request = order_query_service_pb2.GetOrderBookRequest(
            instrument=instrument, depth=depth, min_position=min_position
        )
        return await self._unary(self._queries.GetOrderBook, request, timeout, order_book_from_wire)

    async def list_trades(
        self,
        instrument: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        min_position: str = "",
        timeout: float | None = None,
    ) -> TradesPage:
        """One page of an instrument's trades, most recent first."""
        request = order_query_service_pb2.ListTradesRequest(
            instrument=instrument,
            page_size=page_size,
            page_token=page_token,
            min_position=min_position,
        )
        return await self._unary(
            self._queries.ListTrades,
            request,
            timeout,
            lambda reply: TradesPage(
                trades=tuple(trade_from_wire(trade) for trade in reply.trades),
                next_page_token=reply.next_page_token,
            ),
        )

    async def list_instruments(self, *, timeout: float | None = None) -> list[Instrument]:
        return await self._unary(
            self._queries.ListInstruments,
            order_query_service_pb2.ListInstrumentsRequest(),
            timeout,
            lambda reply: [instrument_from_wire(item) for item in reply.instruments],
        )

    # --- market data streams -------------------------------------------------------------

    def stream_trades(
        self, instrument: str, *, after_position: str = ""
    ) -> AsyncGenerator[TradeEvent, None]:
        """Trades of `instrument` as they execute, until the caller stops iterating; with
        `after_position` (a trade's `position`), first the trades after it."""
        request = market_data_service_pb2.StreamTradesRequest(
            instrument=instrument, after_position=after_position
        )
        call = self._market_data.StreamTrades(request, metadata=self._metadata)
        return _server_stream(call, trade_event_from_wire)

    def stream_order_book(
        self, instrument: str, *, depth: int = 0
    ) -> AsyncGenerator[BookSnapshot | BookUpdate, None]:
        """A BookSnapshot, then BookUpdates with contiguous sequence numbers."""
        request = market_data_service_pb2.StreamOrderBookRequest(instrument=instrument, depth=depth)
        call = self._market_data.StreamOrderBook(request, metadata=self._metadata)
        return _server_stream(call, book_message_from_wire)

    def stream_order_updates(
        self, user_id: str, *, instrument: str = ""
    ) -> AsyncGenerator[OrderUpdate, None]:
        """Every change of `user_id`'s orders (optionally of one instrument)."""
        request = market_data_service_pb2.StreamOrderUpdatesRequest(
            user_id=user_id, instrument=instrument
        )
        call = self._market_data.StreamOrderUpdates(request, metadata=self._metadata)
        return _server_stream(call, order_update_from_wire)

    # --- API keys (AdminService: an admin key) -------------------------------------------

    async def issue_api_key(
        self, user_id: str, scopes: Iterable[Scope], *, timeout: float | None = None
    ) -> IssuedApiKey:
        """A new key of `user_id` (the account exists from its first key on) with `scopes`;
        the answer is the only place the whole key is ever shown."""
        request = admin_service_pb2.IssueApiKeyRequest(
            user_id=user_id,
            scopes=[to_wire(scope) for scope in scopes],  # type: ignore[misc]
        )
        return await self._unary(
            self._admin.IssueApiKey,
            request,
            timeout,
            lambda reply: IssuedApiKey(key_id=reply.key_id, api_key=reply.api_key),
        )

    async def revoke_api_key(self, key_id: str, *, timeout: float | None = None) -> None:
        """Revoke a key on every server (within a second). NotFoundError for an unknown
        key, FailedPreconditionError for one already revoked."""
        request = admin_service_pb2.RevokeApiKeyRequest(key_id=key_id)
        await self._unary(self._admin.RevokeApiKey, request, timeout, _ignore)

    async def list_api_keys(
        self, user_id: str = "", *, timeout: float | None = None
    ) -> list[ApiKey]:
        """The keys of `user_id` (every account's when empty), without their secrets."""
        request = admin_service_pb2.ListApiKeysRequest(user_id=user_id)
        return await self._unary(
            self._admin.ListApiKeys,
            request,
            timeout,
            lambda reply: [api_key_from_wire(key) for key in reply.keys],
        )

    # --- accounts --------------------------------------------------------------------------

    async def balances(
        self, user_id: str = "", *, min_position: str = "", timeout: float | None = None
    ) -> list[Balance]:
        """The account's balances (the key's own when `user_id` is empty)."""
        request = account_service_pb2.GetBalancesRequest(user_id=user_id, min_position=min_position)
        return await self._unary(
            self._accounts.GetBalances,
            request,
            timeout,
            lambda reply: [balance_from_wire(balance) for balance in reply.balances],
        )

    async def ledger(
        self,
        user_id: str = "",
        *,
        asset: str = "",
        page_size: int = 0,
        page_token: str = "",
        min_position: str = "",
        timeout: float | None = None,
    ) -> LedgerPage:
        """One page of the account's ledger, most recent first."""
        request = account_service_pb2.ListLedgerEntriesRequest(
            user_id=user_id,
            asset=asset,
            page_size=page_size,
            page_token=page_token,
            min_position=min_position,
        )
        return await self._unary(
            self._accounts.ListLedgerEntries,
            request,
            timeout,
            lambda reply: LedgerPage(
                tuple(ledger_entry_from_wire(entry) for entry in reply.entries),
                reply.next_page_token,
            ),
        )

    async def withdraw(
        self,
        asset: str,
        amount: Decimal | str,
        transfer_id: str,
        *,
        user_id: str = "",
        as_admin: bool = False,
        timeout: float | None = None,
    ) -> Transfer:
        """Withdraw from the key's own account (AccountService), or with `as_admin` from
        `user_id`'s (AdminService); answers the engine's decision."""
        fields = {
            "user_id": user_id,
            "asset": asset,
            "amount": str(amount),
            "transfer_id": transfer_id,
        }
        if as_admin:
            return await self._unary(
                self._admin.Withdraw,
                admin_service_pb2.AdminServiceWithdrawRequest(**fields),
                timeout,
                lambda reply: transfer_from_wire(reply.transfer),
            )
        return await self._unary(
            self._accounts.Withdraw,
            account_service_pb2.WithdrawRequest(**fields),
            timeout,
            lambda reply: transfer_from_wire(reply.transfer),
        )

    async def deposit(
        self,
        user_id: str,
        asset: str,
        amount: Decimal | str,
        transfer_id: str,
        *,
        timeout: float | None = None,
    ) -> Transfer:
        """Credit an account (an admin key); answers the engine's decision."""
        request = admin_service_pb2.DepositRequest(
            user_id=user_id, asset=asset, amount=str(amount), transfer_id=transfer_id
        )
        return await self._unary(
            self._admin.Deposit, request, timeout, lambda reply: transfer_from_wire(reply.transfer)
        )

    async def set_instrument_status(
        self, instrument: str, status: str, *, timeout: float | None = None
    ) -> InstrumentStatusSet:
        """TRADING, CANCEL_ONLY or HALTED (an admin key)."""
        request = admin_service_pb2.SetInstrumentStatusRequest(
            instrument=instrument,
            status=INSTRUMENT_STATUS_VALUES[status],
        )
        return await self._unary(
            self._admin.SetInstrumentStatus,
            request,
            timeout,
            lambda reply: InstrumentStatusSet(
                instrument, INSTRUMENT_STATUS_NAMES.get(reply.status, "UNSPECIFIED"), reply.position
            ),
        )

    # --- plumbing ------------------------------------------------------------------------

    async def _unary(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        convert: Callable[[Any], Converted],
    ) -> Converted:
        try:
            reply = await method(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None
        return convert(reply)


def _ignore(_reply: object) -> None:
    return None


async def _server_stream(
    call: Any, convert: Callable[[Any], Converted]
) -> AsyncGenerator[Converted, None]:
    """Convert a server stream's messages; cancel the call when the consumer stops early."""
    try:
        async for message in call:
            yield convert(message)
    except grpc.aio.AioRpcError as error:
        raise error_from_rpc(error) from None
    finally:
        call.cancel()


class OrderEntryStream:
    """One StreamPlaceOrders call: pipelined order entry with one answer per order.

    `submit()` writes an order and returns a future of its answer, so a caller can keep
    many orders in flight; `place()` waits for the answer. Answers are matched to requests
    by `request_id`, whatever order the service answers in. A refused order fails only its
    own future (with the ExchangeError decoded from the in-stream CommandError); the
    stream goes on. If the call itself fails, every pending future fails with that error.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._request_ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[PlaceResult]] = {}
        # grpc.aio allows one write at a time per call.
        self._write_lock = asyncio.Lock()
        self._failure: ExchangeError | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_answers())

    @property
    def in_flight(self) -> int:
        """Orders written and not answered yet."""
        return len(self._pending)

    async def submit(self, order: NewOrder, *, wait: bool = False) -> asyncio.Future[PlaceResult]:
        """Write one order; the future resolves to its PlaceResult or fails. With `wait`,
        the answer comes once the engine has handled the order (as `place_order`)."""
        if self._failure is not None:
            raise self._failure
        request_id = next(self._request_ids)
        answer: asyncio.Future[PlaceResult] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        placing = new_order_to_wire(order)
        placing.wait_for_outcome = wait
        request = order_command_service_pb2.StreamPlaceOrdersRequest(
            request_id=request_id, order=placing
        )
        try:
            async with self._write_lock:
                await self._call.write(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as error:
            self._pending.pop(request_id, None)
            if isinstance(error, grpc.aio.AioRpcError):
                raise error_from_rpc(error) from None
            raise make_error(grpc.StatusCode.CANCELLED, "order entry stream closed") from None
        return answer

    async def place(self, order: NewOrder, *, wait: bool = False) -> PlaceResult:
        """Write one order and wait for its answer."""
        return await (await self.submit(order, wait=wait))

    async def close(self) -> None:
        """Half-close, wait for the answers still due, then end the call."""
        try:
            async with self._write_lock:
                await self._call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # The call already ended; the reader has failed what was pending.
        await self._reader

    async def _read_answers(self) -> None:
        try:
            while True:
                answer = await self._call.read()
                if answer is grpc.aio.EOF:
                    break
                self._resolve(answer)
        except grpc.aio.AioRpcError as error:
            self._failure = error_from_rpc(error)
        except asyncio.CancelledError:
            self._failure = make_error(grpc.StatusCode.CANCELLED, "order entry stream cancelled")
        if self._failure is None and self._pending:
            self._failure = make_error(
                grpc.StatusCode.UNAVAILABLE, "order entry stream ended with orders unanswered"
            )
        for answer_future in self._pending.values():
            if not answer_future.done() and self._failure is not None:
                answer_future.set_exception(self._failure)
        self._pending.clear()

    def _resolve(self, answer: order_command_service_pb2.StreamPlaceOrdersResponse) -> None:
        answer_future = self._pending.pop(answer.request_id, None)
        if answer_future is None or answer_future.done():
            return  # An answer nobody waits for (already failed or cancelled).
        if answer.WhichOneof("result") == "error":
            answer_future.set_exception(error_from_command_error(answer.error))
        else:
            answer_future.set_result(place_result_from_wire(answer.placed))
