"""Every Prometheus metric the exchange exports, and the helpers that record them.

The metrics are module-level objects created once, at import, in prometheus-client's default
registry (which also carries the `process_*` and `python_*` collectors used by the
"process health" panels). All names start with `exchange_`. Label values are bounded: the
instrument symbols come from the instrument config, reasons are the engine's upper-case
reason codes, consumers are the engine runner and the projection builders by name.

Callers should prefer the helper functions below to touching the metric objects, so that the
label names stay in one place:

- order flow: `record_order_placed`, `record_engine_events` (counts engine event dicts);
- commands: `record_command`, `track_command_in_flight`; limits: `record_rate_limited`,
  `set_open_streams`;
- latency: `observe_engine_command`, `observe_place_to_ack`, `observe_place_to_fill_visible`,
  `time_append`;
- lag: `observe_lag`, `record_consumer_processed`; queues: `set_queue_length`,
  `set_stream_subscribers`;
- consumer failures: `declare_consumer`, `record_consumer_failure`, `set_consumer_stuck`,
  `clear_consumer_stuck`, `record_engine_snapshot_failure`;
- book: `observe_book`, `observe_last_price`; Redis book views: `set_redis_views_ready`,
  `record_redis_views_rebuild`;
- `start_metrics_server(port)` serves `/metrics` over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

from server.log_contract import layout
from server.observability.tracing import get_tracer, tracing_enabled

Number = Decimal | float | int | str

# Buckets in seconds. The engine works in microseconds; gRPC calls and appends in
# milliseconds; place-to-fill spans append + match + projection.
ENGINE_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

# --- build / process -------------------------------------------------------------------

BUILD_INFO = Info("exchange_build", "Version of the running exchange service.")

# --- gRPC ------------------------------------------------------------------------------

GRPC_REQUESTS = Counter(
    "exchange_grpc_requests",
    "gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
)
GRPC_REQUEST_DURATION = Histogram(
    "exchange_grpc_request_duration_seconds",
    "Time to handle a gRPC call (for streams: until the stream ends).",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_REQUESTS_IN_FLIGHT = Gauge(
    "exchange_grpc_requests_in_flight",
    "gRPC calls being handled now (open streams included).",
    ["service", "method"],
)
# --- HTTP ------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "exchange_http_requests",
    "HTTP API calls answered, by operation (its operationId) and HTTP status.",
    ["operation", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "exchange_http_request_duration_seconds",
    "Time to answer an HTTP API call (for event streams: until the stream starts).",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)

GRPC_STREAM_MESSAGES_SENT = Counter(
    "exchange_grpc_stream_messages_sent",
    "Messages sent on server-streaming gRPC calls.",
    ["service", "method"],
)

# --- commands --------------------------------------------------------------------------

COMMANDS = Counter(
    "exchange_commands",
    "Commands handled by the command service, by command and result "
    "(appended, duplicate, or the error status such as INVALID_ARGUMENT).",
    ["command", "result"],
)
COMMANDS_IN_FLIGHT = Gauge(
    "exchange_commands_in_flight",
    "Commands received and not yet answered by the command service.",
    ["command"],
)

# --- limits (server/limits) ------------------------------------------------------------
# `key` is the limits' key: the caller's address today, the API key's id with identities.

AUTHENTICATIONS = Counter(
    "exchange_authentications",
    "Key checks of incoming calls, by result: ok, public (a call that needs no key),"
    " unauthenticated, permission_denied.",
    ["result"],
)
RATE_LIMITED = Counter(
    "exchange_rate_limited",
    "Commands refused with RESOURCE_EXHAUSTED by the per-key rate limit, by key.",
    ["key"],
)
OPEN_STREAMS = Gauge(
    "exchange_open_streams",
    "Streaming calls open now, by key (a key with none has no series).",
    ["key"],
)

# --- order flow per instrument ---------------------------------------------------------

ORDERS_PLACED = Counter(
    "exchange_orders_placed",
    "Orders placed (OrderPlaceRequested appended).",
    ["instrument"],
)
ORDERS_ACCEPTED = Counter(
    "exchange_orders_accepted", "Orders accepted by the engine.", ["instrument"]
)
ORDERS_REJECTED = Counter(
    "exchange_orders_rejected",
    "Orders rejected by the engine, by reason code.",
    ["instrument", "reason"],
)
ORDERS_FILLED = Counter("exchange_orders_filled", "Orders completely filled.", ["instrument"])
ORDERS_PARTIALLY_FILLED = Counter(
    "exchange_orders_partially_filled",
    "Partial fills (OrderPartiallyFilled events: an order filled in part, rest open).",
    ["instrument"],
)
ORDERS_CANCELLED = Counter(
    "exchange_orders_cancelled",
    "Orders cancelled, by reason code (user request, IOC remainder, self-trade, ...).",
    ["instrument", "reason"],
)
ORDERS_EXPIRED = Counter("exchange_orders_expired", "Orders expired (GTD).", ["instrument"])
ORDERS_AMENDED = Counter("exchange_orders_amended", "Orders amended.", ["instrument"])
CANCELS_REJECTED = Counter(
    "exchange_cancels_rejected",
    "Cancel requests the engine refused, by reason code.",
    ["instrument", "reason"],
)
AMENDS_REJECTED = Counter(
    "exchange_amends_rejected",
    "Amend requests the engine refused, by reason code.",
    ["instrument", "reason"],
)
STOPS_TRIGGERED = Counter("exchange_stops_triggered", "Stop orders triggered.", ["instrument"])
TRADES = Counter("exchange_trades", "Trades executed.", ["instrument"])
# Money (accounts on): holds by asset, fees by asset, transfers by kind and result.
FUNDS_HELD = Counter("exchange_funds_held", "Holds placed on funds by orders.", ["asset"])
FUNDS_HELD_AMOUNT = Counter(
    "exchange_funds_held_amount", "Amount held by orders, in the asset's units.", ["asset"]
)
FEES_COLLECTED = Counter(
    "exchange_fees_collected", "Fees credited to the venue, in the asset's units.", ["asset"]
)
TRANSFERS = Counter(
    "exchange_transfers", "Deposits and withdrawals decided by the engine.", ["kind", "result"]
)
TRADED_VOLUME = Counter(
    "exchange_traded_volume",
    "Traded quantity, in units of the instrument's base asset.",
    ["instrument"],
)
TRADED_NOTIONAL = Counter(
    "exchange_traded_notional",
    "Traded value (price x quantity), in units of the quote asset.",
    ["instrument"],
)

# --- latency ---------------------------------------------------------------------------

ENGINE_COMMAND_DURATION = Histogram(
    "exchange_engine_command_duration_seconds",
    "Time the matching engine spends on one command, by command type.",
    ["command"],
    buckets=ENGINE_BUCKETS,
)
ENGINE_BATCH_SIZE = Histogram(
    "exchange_engine_batch_commands",
    "Commands the engine runner handles per atomic append.",
    buckets=BATCH_BUCKETS,
)
PLACE_TO_ACK = Histogram(
    "exchange_place_to_ack_seconds",
    "From PlaceOrder received to the engine's answer (accepted/rejected) durably appended.",
    ["instrument"],
    buckets=LATENCY_BUCKETS,
)
PLACE_TO_FILL_VISIBLE = Histogram(
    "exchange_place_to_fill_visible_seconds",
    "From PlaceOrder received to its fill being visible in the query views.",
    ["instrument"],
    buckets=LATENCY_BUCKETS,
)
EVENTSTORE_APPEND_DURATION = Histogram(
    "exchange_eventstore_append_duration_seconds",
    "Time of one event-store append (single or multi-stream), by backend.",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
EVENTSTORE_APPENDED_EVENTS = Counter(
    "exchange_eventstore_appended_events",
    "Events appended to the event store, by backend.",
    ["backend"],
)
EVENTSTORE_APPEND_BATCH = Histogram(
    "exchange_eventstore_append_batch_events",
    "Events written per event-store append (group commit batch size).",
    ["backend"],
    buckets=BATCH_BUCKETS,
)
EVENTSTORE_APPEND_ERRORS = Counter(
    "exchange_eventstore_append_errors",
    "Failed event-store appends, by backend and error (e.g. WrongExpectedVersion).",
    ["backend", "error"],
)

# --- lag, in-flight work, queues -------------------------------------------------------

CONSUMER_LAG_EVENTS = Gauge(
    "exchange_consumer_lag_events",
    "Events between a consumer's position and the head of the log.",
    ["consumer"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "exchange_consumer_lag_seconds",
    "Age of the oldest event a consumer has not applied yet (0 when caught up).",
    ["consumer"],
)
CONSUMER_EVENTS_PROCESSED = Counter(
    "exchange_consumer_events_processed",
    "Events a consumer (engine runner, projection) has processed.",
    ["consumer"],
)
CONSUMER_LAST_PROCESSED = Gauge(
    "exchange_consumer_last_processed_timestamp_seconds",
    "Unix time at which a consumer last processed an event.",
    ["consumer"],
)
CONSUMER_FAILURES = Counter(
    "exchange_consumer_failures",
    "Attempts of a consumer (engine runner, projection) that failed: an event it could not "
    "apply, or a failed read or write of its log or view.",
    ["consumer"],
)
CONSUMER_STUCK = Gauge(
    "exchange_consumer_stuck",
    "1 while a consumer is stopped at an event it cannot apply (it retries, and resumes "
    "from that event once it can), else 0.",
    ["consumer"],
)
CONSUMER_STUCK_EVENT = Gauge(
    "exchange_consumer_stuck_event",
    "1 for the event a stuck consumer is stopped at: its log position, type and the error's "
    "class as `reason` (the series exists only while the consumer is stuck).",
    ["consumer", "event_type", "position", "reason"],
)
ENGINE_SNAPSHOT_FAILURES = Counter(
    "exchange_engine_snapshot_failures",
    "Engine snapshots that could not be written (the batch is written without one; a "
    "restart then replays from the previous snapshot).",
)
QUEUE_LENGTH = Gauge("exchange_queue_length", "Items waiting in an internal queue.", ["queue"])
STREAM_SUBSCRIBERS = Gauge(
    "exchange_stream_subscribers",
    "Live subscribers of a market-data stream.",
    ["stream"],
)

# --- book and prices -------------------------------------------------------------------

BOOK_BEST_BID = Gauge("exchange_book_best_bid", "Best bid price (NaN when none).", ["instrument"])
BOOK_BEST_ASK = Gauge("exchange_book_best_ask", "Best ask price (NaN when none).", ["instrument"])
BOOK_SPREAD = Gauge(
    "exchange_book_spread", "Best ask minus best bid (NaN unless both exist).", ["instrument"]
)
BOOK_DEPTH = Gauge(
    "exchange_book_depth",
    "Quantity resting on one side of the book (over the levels observed).",
    ["instrument", "side"],
)
BOOK_LEVELS = Gauge(
    "exchange_book_levels",
    "Price levels on one side of the book (over the levels observed).",
    ["instrument", "side"],
)
LAST_TRADE_PRICE = Gauge("exchange_last_trade_price", "Price of the last trade.", ["instrument"])
REDIS_VIEWS_READY = Gauge(
    "exchange_redis_views_ready",
    "1 while the Redis book views are whole, 0 while they are rebuilt from the log.",
)
REDIS_VIEWS_REBUILDS = Counter(
    "exchange_redis_views_rebuilds",
    "Rebuilds of the Redis book views from the log, by why: lost (Redis lost them), empty "
    "(none at start), behind (Redis older than the builder), resumed (one interrupted).",
    ["reason"],
)

NAN = float("nan")


def _float(value: Number) -> float:
    return float(value)


# --- helpers ---------------------------------------------------------------------------

# Labelled children by (metric, label values): prometheus-client's labels() validates and
# locks on every call, which shows in the engine's per-event path; a dict lookup does not.
# Label values are bounded (instruments, reason codes, consumers), so the cache is too.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def set_build_info(version: str, **extra: str) -> None:
    """Publish the service version (and e.g. the event-store backend) as exchange_build_info."""
    BUILD_INFO.info({"version": version, **extra})


def record_http_request(operation: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(operation, str(status)).inc()
    HTTP_REQUEST_DURATION.labels(operation).observe(seconds)


def record_authentication(result: str) -> None:
    AUTHENTICATIONS.labels(result).inc()


def record_rate_limited(key: str) -> None:
    RATE_LIMITED.labels(key).inc()


def set_open_streams(key: str, count: int) -> None:
    """The open streams of `key`; at 0 its series goes, so the label set stays bounded by
    the keys streaming now."""
    if count > 0:
        OPEN_STREAMS.labels(key).set(count)
        return
    with suppress(KeyError):
        OPEN_STREAMS.remove(key)


def record_order_placed(instrument: str) -> None:
    """Count one PlaceOrder whose OrderPlaceRequested was appended."""
    _child(ORDERS_PLACED, instrument).inc()


def record_command(command: str, result: str) -> None:
    """Count one command (`place`, `cancel`, `amend`) by result (`appended`, `duplicate`, or
    the gRPC status name it was refused with, e.g. `INVALID_ARGUMENT`)."""
    _child(COMMANDS, command, result).inc()


@contextmanager
def track_command_in_flight(command: str) -> Iterator[None]:
    """Hold `exchange_commands_in_flight{command}` up while the block runs."""
    gauge = _child(COMMANDS_IN_FLIGHT, command)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def _reason(event: Mapping[str, Any]) -> str:
    reason = event.get("reason")
    return str(reason) if reason else "UNSPECIFIED"


def record_engine_events(instrument: str, events: Iterable[Mapping[str, Any]]) -> None:
    """Count order flow from engine results as the log's JSON data (``{"type", ...}``).

    Each dict's own `"instrument"` wins over the argument, so a batch covering several
    instruments can be passed with any of them. Unknown event types are ignored.
    """
    for event in events:
        kind = event.get("type")
        symbol = event.get("instrument") or instrument
        if kind == layout.ORDER_ACCEPTED:
            _child(ORDERS_ACCEPTED, symbol).inc()
        elif kind == layout.TRADE_EXECUTED:
            _child(TRADES, symbol).inc()
            quantity = _float(event.get("quantity", 0))
            price = event.get("price")
            _child(TRADED_VOLUME, symbol).inc(quantity)
            if price is not None:
                _child(TRADED_NOTIONAL, symbol).inc(quantity * _float(price))
                _child(LAST_TRADE_PRICE, symbol).set(_float(price))
        elif kind == layout.ORDER_FILLED:
            _child(ORDERS_FILLED, symbol).inc()
        elif kind == layout.ORDER_PARTIALLY_FILLED:
            _child(ORDERS_PARTIALLY_FILLED, symbol).inc()
        elif kind == layout.ORDER_REJECTED:
            _child(ORDERS_REJECTED, symbol, _reason(event)).inc()
        elif kind == layout.ORDER_CANCELLED:
            _child(ORDERS_CANCELLED, symbol, _reason(event)).inc()
        elif kind == layout.ORDER_EXPIRED:
            _child(ORDERS_EXPIRED, symbol).inc()
        elif kind == layout.ORDER_AMENDED:
            _child(ORDERS_AMENDED, symbol).inc()
        elif kind == layout.CANCEL_REJECTED:
            _child(CANCELS_REJECTED, symbol, _reason(event)).inc()
        elif kind == layout.AMEND_REJECTED:
            _child(AMENDS_REJECTED, symbol, _reason(event)).inc()
        elif kind == layout.STOP_TRIGGERED:
            _child(STOPS_TRIGGERED, symbol).inc()
        elif kind in _MONEY_TYPES:
            _record_money(kind, event)


_MONEY_TYPES = frozenset(
    {
        layout.FUNDS_HELD,
        layout.TRADE_SETTLED,
        layout.FUNDS_DEPOSITED,
        layout.FUNDS_WITHDRAWN,
        layout.TRANSFER_REJECTED,
    }
)


def _record_money(kind: str, event: Mapping[str, Any]) -> None:
    if kind == layout.FUNDS_HELD:
        asset = str(event.get("asset"))
        _child(FUNDS_HELD, asset).inc()
        _child(FUNDS_HELD_AMOUNT, asset).inc(_float(event.get("amount", 0)))
    elif kind == layout.TRADE_SETTLED:
        fees = _float(event.get("buyer_fee", 0)) + _float(event.get("seller_fee", 0))
        if fees:
            _child(FEES_COLLECTED, str(event.get("quote_asset"))).inc(fees)
    elif kind == layout.FUNDS_DEPOSITED:
        _child(TRANSFERS, "deposit", "completed").inc()
    elif kind == layout.FUNDS_WITHDRAWN:
        _child(TRANSFERS, "withdrawal", "completed").inc()
    else:
        _child(TRANSFERS, "transfer", _reason(event)).inc()


def observe_engine_command(command: str, seconds: float) -> None:
    """Record the engine's time for one command (`place`, `cancel`, `amend`, `advance_time`)."""
    _child(ENGINE_COMMAND_DURATION, command).observe(seconds)


def observe_engine_batch(commands: int) -> None:
    """Record how many commands the engine runner wrote in one atomic append."""
    ENGINE_BATCH_SIZE.observe(commands)


def observe_place_to_ack(instrument: str, seconds: float) -> None:
    """Record PlaceOrder-received to engine-answer-appended (use the command's requested_at)."""
    _child(PLACE_TO_ACK, instrument).observe(seconds)


def observe_place_to_fill_visible(instrument: str, seconds: float) -> None:
    """Record PlaceOrder-received to fill-visible-in-views (projection side)."""
    _child(PLACE_TO_FILL_VISIBLE, instrument).observe(seconds)


_backends_seen: set[str] = set()


@contextmanager
def time_append(backend: str, event_count: int, stream: str | None = None) -> Iterator[None]:
    """Time one event-store append of `event_count` events; a raised error is counted by its
    class name and re-raised. While tracing is on it is also an `eventstore.append` span
    (in the caller's trace: wrap the append where the caller awaits it)."""
    if backend not in _backends_seen:
        # Export the error counter at 0 from the first append on, so the error alert and
        # panel have a series to compare against before anything fails.
        _backends_seen.add(backend)
        _child(EVENTSTORE_APPEND_ERRORS, backend, "WrongExpectedVersion")
    started = time.perf_counter()
    try:
        if tracing_enabled():
            attributes: dict[str, str | int] = {
                "db.system": backend,
                "eventstore.events": event_count,
            }
            if stream is not None:
                attributes["eventstore.stream"] = stream
            with get_tracer().start_as_current_span("eventstore.append", attributes=attributes):
                yield
        else:
            yield
    except BaseException as error:
        _child(EVENTSTORE_APPEND_ERRORS, backend, type(error).__name__).inc()
        raise
    _child(EVENTSTORE_APPEND_DURATION, backend).observe(time.perf_counter() - started)
    _child(EVENTSTORE_APPENDED_EVENTS, backend).inc(event_count)
    _child(EVENTSTORE_APPEND_BATCH, backend).observe(event_count)


def observe_lag(consumer: str, events_behind: int, seconds_behind: float) -> None:
    """Publish how far `consumer` (`engine`, `projection:<name>`) trails the log head.

    `events_behind` counts the events of the log (those the consumer reads) after its
    position; `seconds_behind` is now minus the recorded time of the first of them, 0 when
    it has caught up (so an idle log does not look like lag). `consumer_lag.LagWatcher`
    measures both against the head, so they keep growing while a consumer is stuck.
    """
    _child(CONSUMER_LAG_EVENTS, consumer).set(events_behind)
    _child(CONSUMER_LAG_SECONDS, consumer).set(seconds_behind)


def record_consumer_processed(consumer: str, count: int = 1) -> None:
    """Count events processed by `consumer` and stamp the time (drives the stall alert)."""
    _child(CONSUMER_EVENTS_PROCESSED, consumer).inc(count)
    _child(CONSUMER_LAST_PROCESSED, consumer).set(time.time())


# The labels of each stuck consumer's `exchange_consumer_stuck_event` series.
_stuck_event_labels: dict[str, tuple[str, str, str]] = {}


def declare_consumer(consumer: str) -> None:
    """Export `consumer`'s failure counter and stuck gauge at 0, so that the alert and the
    panels have a series before anything fails (a new owner of the consumer starts with
    it not stuck)."""
    _child(CONSUMER_FAILURES, consumer)
    clear_consumer_stuck(consumer)


def record_consumer_failure(consumer: str) -> None:
    """Count one failed attempt of `consumer`."""
    _child(CONSUMER_FAILURES, consumer).inc()


def set_consumer_stuck(consumer: str, event_type: str, position: str, reason: str) -> None:
    """`consumer` is stopped at the event at `position` of type `event_type`; `reason` is
    the error's class name (bounded, unlike its message)."""
    clear_consumer_stuck(consumer)
    _stuck_event_labels[consumer] = (event_type, position, reason)
    CONSUMER_STUCK_EVENT.labels(consumer, event_type, position, reason).set(1)
    _child(CONSUMER_STUCK, consumer).set(1)


def clear_consumer_stuck(consumer: str) -> None:
    """`consumer` is no longer stuck: its gauge back to 0, its stuck-event series removed."""
    labels = _stuck_event_labels.pop(consumer, None)
    if labels is not None:
        CONSUMER_STUCK_EVENT.remove(consumer, *labels)
    _child(CONSUMER_STUCK, consumer).set(0)


def record_engine_snapshot_failure() -> None:
    """Count one engine snapshot that could not be written."""
    ENGINE_SNAPSHOT_FAILURES.inc()


def set_queue_length(queue: str, length: int) -> None:
    """Publish the length of an internal queue (e.g. `group_commit`, `engine_input`)."""
    _child(QUEUE_LENGTH, queue).set(length)


def set_stream_subscribers(stream: str, count: int) -> None:
    """Publish the live subscriber count of a stream (`trades`, `order_book`, `orders`)."""
    _child(STREAM_SUBSCRIBERS, stream).set(count)


def observe_book(
    instrument: str,
    bids: Sequence[tuple[Number, Number]],
    asks: Sequence[tuple[Number, Number]],
) -> None:
    """Publish best bid/ask, spread, depth and level count from aggregated levels.

    `bids` best (highest) first and `asks` best (lowest) first, each `(price, quantity)` in
    display units (Decimal or float), as the book view serves them.
    """
    best_bid = _float(bids[0][0]) if bids else NAN
    best_ask = _float(asks[0][0]) if asks else NAN
    _child(BOOK_BEST_BID, instrument).set(best_bid)
    _child(BOOK_BEST_ASK, instrument).set(best_ask)
    _child(BOOK_SPREAD, instrument).set(best_ask - best_bid if bids and asks else NAN)
    _child(BOOK_DEPTH, instrument, "bid").set(sum(_float(quantity) for _, quantity in bids))
    _child(BOOK_DEPTH, instrument, "ask").set(sum(_float(quantity) for _, quantity in asks))
    _child(BOOK_LEVELS, instrument, "bid").set(len(bids))
    _child(BOOK_LEVELS, instrument, "ask").set(len(asks))


def set_redis_views_ready(ready: bool) -> None:
    """Publish whether the Redis book views are whole (readers serve them only then)."""
    REDIS_VIEWS_READY.set(1 if ready else 0)


def record_redis_views_rebuild(reason: str) -> None:
    """Count one rebuild of the Redis book views from the log (`lost`, `empty`, `behind`,
    `resumed`)."""
    _child(REDIS_VIEWS_REBUILDS, reason).inc()


def observe_last_price(instrument: str, price: Number) -> None:
    """Publish the last trade price (record_engine_events already does this for trades)."""
    _child(LAST_TRADE_PRICE, instrument).set(_float(price))


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> int:
    """Serve `/metrics` on `addr:port` from a daemon thread; returns the bound port (so
    `port=0` picks a free one). The server lives as long as the process."""
    server, _thread = start_http_server(port, addr=addr)
    return int(server.server_port)
