"""Load generator: N orders from C concurrent clients, optionally at a target rate.

Each client has its own gRPC channel. In `unary` mode a client sends one PlaceOrder at a
time; in `stream` mode it keeps up to `window` orders in flight on one StreamPlaceOrders
stream; `ping` mode sends the no-op Ping instead of orders, the baseline to compare with.
Orders are a seeded mix of buys and sells around a mid price, on the instrument's tick and
lot grids, so that they cross and trade. With a target rate, order i is due at
start + i / rate and waits for that moment (a client that falls behind sends at once).
Latency is measured per order from the moment it is sent to its answer: the command's
durable acceptance (the answer comes after the append), not the fill; with `wait`, each
order asks the service to answer once the engine has handled it and the views hold the
result (`wait_for_outcome`), so latency is to the engine's decision.

Every call needs an API key, and an order is placed only by its account's key. With the
plan's admin key the generator issues one trade key per simulated user before it starts
measuring (and revokes them afterwards), and, on a venue with accounts, funds each of them
first (an admin Deposit of the instrument's base and quote assets: enough for every order
of the run, so no order is refused for funds); a venue with accounts off skips it. A unary
client sends each order with its user's key; a stream acts for one account, so stream
client c places its orders as user c mod users. `ping` mode calls with the admin key itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import grpc
import grpc.aio

from clients.client import ExchangeClient, TlsFiles
from clients.enums import OrderType, Scope, Side, TimeInForce
from clients.errors import ExchangeError, FailedPreconditionError, make_error
from clients.models import Instrument, IssuedApiKey, NewOrder, PlaceResult

LoadMode = Literal["unary", "stream", "ping"]


@dataclass(frozen=True, slots=True)
class LoadPlan:
    target: str
    orders: int
    concurrency: int
    instrument: str = "BTC-USD"
    rate: float | None = None  # orders per second over all clients; None: as fast as possible
    mode: LoadMode = "unary"
    window: int = 64  # orders in flight per client in stream mode
    users: int = 10
    mid_price: Decimal = Decimal("50000")
    spread_ticks: int = 20  # prices within mid +/- this many ticks
    max_lots: int = 10
    seed: int = 1
    wait: bool = False  # answer once the engine has handled each order (wait_for_outcome)
    # Issues the simulated users' trade keys (ping mode: calls with it).
    admin_api_key: str = field(default="", repr=False)
    tls: TlsFiles | None = None  # TLS (and mutual TLS) as for the CLI; None: plaintext


@dataclass(frozen=True, slots=True)
class LoadReport:
    orders: int
    accepted: int
    refused: int  # answered with an error status (the service said no)
    elapsed_seconds: float
    latencies_ms: tuple[float, ...] = field(repr=False)
    errors_by_code: dict[str, int]

    @property
    def throughput(self) -> float:
        """Answered orders per second of wall time."""
        if self.elapsed_seconds <= 0:
            return 0.0
        return (self.accepted + self.refused) / self.elapsed_seconds

    def latency_percentile_ms(self, percent: float) -> float:
        return percentile(sorted(self.latencies_ms), percent)

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "orders": self.orders,
            "accepted": self.accepted,
            "refused": self.refused,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "throughput_per_second": round(self.throughput, 1),
            "latency_p50_ms": round(self.latency_percentile_ms(50), 3),
            "latency_p95_ms": round(self.latency_percentile_ms(95), 3),
            "latency_p99_ms": round(self.latency_percentile_ms(99), 3),
            "latency_max_ms": round(self.latency_percentile_ms(100), 3),
            "errors_by_code": dict(self.errors_by_code),
        }


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for no values)."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(percent / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def simulated_user(number: int) -> str:
    return f"load-user-{number}"


def generate_orders(plan: LoadPlan, tick_size: Decimal, lot_size: Decimal) -> list[NewOrder]:
    """The plan's orders: deterministic for a seed, on the tick and lot grids."""
    chooser = random.Random(plan.seed)
    mid = (plan.mid_price / tick_size).to_integral_value() * tick_size
    orders = []
    for index in range(plan.orders):
        side = Side.BUY if chooser.random() < 0.5 else Side.SELL
        offset_ticks = chooser.randint(-plan.spread_ticks, plan.spread_ticks)
        price = (mid + offset_ticks * tick_size).quantize(tick_size)
        quantity = (chooser.randint(1, plan.max_lots) * lot_size).quantize(lot_size)
        orders.append(
            NewOrder(
                user_id=simulated_user(index % plan.users),
                instrument=plan.instrument,
                side=side,
                type=OrderType.LIMIT,
                price=price,
                quantity=quantity,
                time_in_force=TimeInForce.GTC,
            )
        )
    return orders


class _Tally:
    """Outcomes shared by all client tasks (one event loop, so no lock needed)."""

    def __init__(self, on_answer: Callable[[], None]) -> None:
        self.latencies_ms: list[float] = []
        self.accepted = 0
        self.refused = 0
        self.errors_by_code: Counter[str] = Counter()
        self._on_answer = on_answer

    def record(self, sent_at: float, error: BaseException | None) -> None:
        self.latencies_ms.append((time.perf_counter() - sent_at) * 1000)
        if error is None:
            self.accepted += 1
        elif isinstance(error, ExchangeError):
            self.refused += 1
            self.errors_by_code[error.code.name] += 1
        else:
            raise error
        self._on_answer()


class _Schedule:
    """Hands out order indexes to client tasks and paces them to the target rate."""

    def __init__(self, total: int, rate: float | None) -> None:
        self._next_index = 0
        self._total = total
        self._rate = rate
        self._start = time.perf_counter()

    async def next_index(self) -> int | None:
        if self._next_index >= self._total:
            return None
        index = self._next_index
        self._next_index += 1
        if self._rate:
            delay = self._start + index / self._rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return index


async def _unary_client(
    clients_by_user: dict[str, ExchangeClient],
    orders: list[NewOrder],
    schedule: _Schedule,
    tally: _Tally,
    wait: bool,
) -> None:
    while (index := await schedule.next_index()) is not None:
        order = orders[index]
        sent_at = time.perf_counter()
        try:
            await clients_by_user[order.user_id].place_order(order, wait=wait)
        except ExchangeError as error:
            tally.record(sent_at, error)
        else:
            tally.record(sent_at, None)


async def _ping_client(client: ExchangeClient, schedule: _Schedule, tally: _Tally) -> None:
    while await schedule.next_index() is not None:
        sent_at = time.perf_counter()
        try:
            await client.ping()
        except ExchangeError as error:
            tally.record(sent_at, error)
        else:
            tally.record(sent_at, None)


async def _stream_client(
    client: ExchangeClient,
    user_id: str,
    orders: list[NewOrder],
    schedule: _Schedule,
    tally: _Tally,
    window: int,
    wait: bool,
) -> None:
    """One stream placing every order it is dealt as `user_id` (its key's account)."""
    in_flight = asyncio.Semaphore(window)

    def answered(sent_at: float, answer: asyncio.Future[PlaceResult]) -> None:
        in_flight.release()
        tally.record(sent_at, answer.exception())

    async with client.order_entry() as entry:
        while (index := await schedule.next_index()) is not None:
            await in_flight.acquire()
            order = dataclasses.replace(orders[index], user_id=user_id)
            sent_at = time.perf_counter()
            try:
                answer = await entry.submit(order, wait=wait)
            except ExchangeError as error:
                in_flight.release()
                tally.record(sent_at, error)
                continue
            answer.add_done_callback(functools.partial(answered, sent_at))


async def _issue_trade_keys(admin: ExchangeClient, users: list[str]) -> list[IssuedApiKey]:
    """A trade key per simulated user, issued with the admin key. If one cannot be issued,
    those that were are revoked, and a refused admin key is told why it is needed."""
    answers = await asyncio.gather(
        *(admin.issue_api_key(user, (Scope.TRADE,)) for user in users), return_exceptions=True
    )
    issued = [answer for answer in answers if isinstance(answer, IssuedApiKey)]
    failure = next((answer for answer in answers if isinstance(answer, BaseException)), None)
    if failure is None:
        return issued
    await _revoke(admin, issued)
    if isinstance(failure, ExchangeError) and failure.code in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    ):
        raise make_error(
            failure.code,
            f"{failure.message}; the load generator issues a trade key per simulated user "
            "and needs an admin key for it (--admin-api-key, $ADMIN_API_KEY or --api-key)",
        ) from None
    raise failure


async def _fund(
    admin: ExchangeClient, users: list[str], instrument: Instrument, orders: list[NewOrder]
) -> None:
    """Deposit into each user's account what every order of the run could cost (10%
    fee margin, the most a venue charges), once per run (fresh transfer ids)."""
    if not instrument.base_asset or not instrument.quote_asset:
        return  # a venue without accounts names no assets
    base = sum((Decimal(order.quantity) for order in orders), Decimal(0))
    quote = sum(
        (Decimal(order.quantity) * Decimal(order.price or 0) for order in orders), Decimal(0)
    ) * Decimal("1.1")
    run = uuid.uuid4().hex[:12]
    try:
        for user in users:
            for asset, amount in ((instrument.base_asset, base), (instrument.quote_asset, quote)):
                await admin.deposit(user, asset, _whole(amount), f"load-{run}-{asset}-{user}")
    except FailedPreconditionError:
        return  # accounts are off on this venue


def _whole(amount: Decimal) -> str:
    """An amount rounded up to a whole unit (valid at any precision)."""
    return str(int(amount.to_integral_value(rounding="ROUND_CEILING")) + 1)


async def _revoke(admin: ExchangeClient, keys: list[IssuedApiKey]) -> None:
    """Revoke the run's keys; a failure here does not undo a measured run."""
    for key in keys:
        with contextlib.suppress(ExchangeError):
            await admin.revoke_api_key(key.key_id)


def _workers(
    plan: LoadPlan,
    channels: list[grpc.aio.Channel],
    keys_by_user: dict[str, str],
    orders: list[NewOrder],
    schedule: _Schedule,
    tally: _Tally,
) -> list[Coroutine[Any, Any, None]]:
    """One task per channel: Pings with the admin key, or orders with their users' keys."""
    if plan.mode == "ping":
        return [
            _ping_client(ExchangeClient(channel, api_key=plan.admin_api_key), schedule, tally)
            for channel in channels
        ]
    if plan.mode == "unary":
        return [
            _unary_client(
                {user: ExchangeClient(channel, api_key=key) for user, key in keys_by_user.items()},
                orders,
                schedule,
                tally,
                plan.wait,
            )
            for channel in channels
        ]
    users = list(keys_by_user)
    workers = []
    for number, channel in enumerate(channels):
        user = users[number % len(users)]
        client = ExchangeClient(channel, api_key=keys_by_user[user])
        workers.append(
            _stream_client(client, user, orders, schedule, tally, plan.window, plan.wait)
        )
    return workers


async def run_load(plan: LoadPlan, *, on_answer: Callable[[], None] = lambda: None) -> LoadReport:
    """Run the plan against `plan.target` and measure it. `on_answer` is called per answer
    (the CLI advances its progress bar with it)."""
    if plan.orders < 1 or plan.concurrency < 1 or plan.window < 1:
        raise ValueError("orders, concurrency and window must be at least 1")
    admin = ExchangeClient.connect(plan.target, api_key=plan.admin_api_key, tls=plan.tls)
    channels = [
        grpc.aio.insecure_channel(plan.target)
        if plan.tls is None
        else grpc.aio.secure_channel(plan.target, plan.tls.credentials())
        for _ in range(plan.concurrency)
    ]
    issued: list[IssuedApiKey] = []
    try:
        instruments = {item.symbol: item for item in await admin.list_instruments()}
        if plan.instrument not in instruments:
            raise ValueError(
                f"unknown instrument {plan.instrument!r}; the service has "
                + ", ".join(sorted(instruments))
            )
        instrument = instruments[plan.instrument]
        orders = generate_orders(plan, instrument.tick_size, instrument.lot_size)
        keys_by_user: dict[str, str] = {}
        if plan.mode != "ping":  # keys before the clock starts: issuing is not measured
            users = [simulated_user(number) for number in range(min(plan.users, plan.orders))]
            issued = await _issue_trade_keys(admin, users)
            keys_by_user = {user: key.api_key for user, key in zip(users, issued, strict=True)}
            await _fund(admin, users, instrument, orders)
        tally = _Tally(on_answer)
        schedule = _Schedule(plan.orders, plan.rate)
        started = time.perf_counter()
        await asyncio.gather(*_workers(plan, channels, keys_by_user, orders, schedule, tally))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
        await _revoke(admin, issued)
        await admin.close()
    return LoadReport(
        orders=plan.orders,
        accepted=tally.accepted,
        refused=tally.refused,
        elapsed_seconds=elapsed,
        latencies_ms=tuple(tally.latencies_ms),
        errors_by_code=dict(tally.errors_by_code),
    )
