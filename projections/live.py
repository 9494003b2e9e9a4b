"""Live feeds: in-process fan-out of trades, book updates and order updates.

The builders publish here after each committed batch (so whatever a subscriber sees, the
views already hold): the Redis builder publishes trades and book updates, the PostgreSQL
builder order updates. Each subscriber owns a bounded buffer; publishing never waits. A
subscriber whose buffer is full is dropped at once: its iterator raises `SubscriberLagged`
("resubscribe") and the feed and every other subscriber go on untouched.

`subscribe_instrument_status` yields an instrument's status (TRADING, CANCEL_ONLY, HALTED)
then each change; book snapshots carry the status too.

`subscribe_balances` does the same for one user's balances (the Redis builder publishes
them): a `BalanceSnapshot`, then each `BalanceView` after each change.

`subscribe_book` yields a `BookSnapshot` (taken synchronously from the published book, so
no update can slip between it and the registration) and then the `BookUpdate`s whose
sequences follow the snapshot's without gap. While the Redis builder rebuilds the book
views (`set_books_ready(False)`), `subscribe_book` raises `BookViewsNotReady` rather than
hand out a snapshot the builder has not finished; subscribers already there go on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Generic, TypeVar

from projections.book_views import NOT_READY, BookViewsNotReady
from projections.views import (
    BUY,
    BalanceSnapshot,
    BalanceView,
    BookSnapshot,
    BookUpdate,
    InstrumentStatusView,
    LevelChange,
    OrderUpdate,
    PriceLevel,
    TradeView,
)
from server.observability import metrics

DEFAULT_SUBSCRIBER_BUFFER = 1024

Item = TypeVar("Item")


class SubscriberLagged(Exception):
    """The subscriber fell further behind than its buffer holds: resubscribe."""


class Subscription(Generic[Item]):
    """One subscriber's bounded buffer; iterate it with `async for`, close it when done."""

    def __init__(self, capacity: int, on_close: Callable[[Subscription[Item]], None]) -> None:
        self._capacity = capacity
        self._buffer: deque[Item] = deque()
        self._wakeup = asyncio.Event()
        self._on_close = on_close
        self.lagged = False
        self.closed = False

    def offer(self, item: Item) -> bool:
        """Buffer `item`; False (and the subscriber is marked lagged) when the buffer is full."""
        if self.closed:
            return False
        if len(self._buffer) >= self._capacity:
            self.lagged = True
            self._buffer.clear()
            self._wakeup.set()
            return False
        self._buffer.append(item)
        self._wakeup.set()
        return True

    def close_after_lag(self) -> None:
        """Drop this subscriber from the feed; its iterator raises `SubscriberLagged`."""
        self.lagged = True
        self._buffer.clear()
        self._wakeup.set()
        self._on_close(self)

    def end(self) -> None:
        """Finish the stream normally (the feeds are stopping)."""
        self.closed = True
        self._wakeup.set()

    def close(self) -> None:
        """Unsubscribe (idempotent)."""
        self.closed = True
        self._buffer.clear()
        self._wakeup.set()
        self._on_close(self)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def __aiter__(self) -> Subscription[Item]:
        return self

    async def __anext__(self) -> Item:
        while True:
            if self.lagged:
                raise SubscriberLagged("subscriber fell behind the feed; resubscribe")
            if self._buffer:
                return self._buffer.popleft()
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    async def __aenter__(self) -> Subscription[Item]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class _PublishedBook:
    """The book as the feed last published it: price -> level, per side."""

    sequence: int = 0
    position: str = ""
    bids: dict[Decimal, PriceLevel] = field(default_factory=dict)
    asks: dict[Decimal, PriceLevel] = field(default_factory=dict)

    def apply(self, change: LevelChange) -> None:
        side = self.bids if change.side == BUY else self.asks
        if change.order_count == 0 and change.quantity == 0:
            side.pop(change.price, None)
        else:
            side[change.price] = PriceLevel(change.price, change.quantity, change.order_count)

    def snapshot(self, instrument: str, depth: int, status: str = "TRADING") -> BookSnapshot:
        bids = sorted(self.bids.values(), key=lambda level: level.price, reverse=True)
        asks = sorted(self.asks.values(), key=lambda level: level.price)
        if depth > 0:
            bids, asks = bids[:depth], asks[:depth]
        return BookSnapshot(
            instrument, self.sequence, tuple(bids), tuple(asks), self.position, status
        )


BALANCES_NOT_READY = "the balance views are being rebuilt"
TRADING = "TRADING"
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _position_order(token: str) -> tuple[int, ...]:
    """A position token ("<tx>:<seq>") as a sortable key ("" first)."""
    return tuple(int(part) for part in token.split(":")) if token else ()


def _end_all(group: dict[str, set[Subscription[Item]]]) -> None:
    for subscribers in group.values():
        for subscription in tuple(subscribers):
            subscription.end()
    group.clear()


class LiveFeeds:
    """Fan-out hub: builders publish, gRPC streams subscribe."""

    def __init__(self, subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER) -> None:
        self._subscriber_buffer = subscriber_buffer
        self._trade_subscribers: dict[str, set[Subscription[TradeView]]] = {}
        self._book_subscribers: dict[str, set[Subscription[BookSnapshot | BookUpdate]]] = {}
        self._order_subscribers: dict[str, set[Subscription[OrderUpdate]]] = {}
        self._order_instrument_filter: dict[Subscription[OrderUpdate], str | None] = {}
        self._books: dict[str, _PublishedBook] = {}
        self._balance_subscribers: dict[str, set[Subscription[BalanceSnapshot | BalanceView]]] = {}
        # Every balance as last published, per user then asset (the snapshots' source).
        self._balances: dict[str, dict[str, BalanceView]] = {}
        self._status_subscribers: dict[str, set[Subscription[InstrumentStatusView]]] = {}
        # Instruments whose status an admin set, as last published (absent: TRADING).
        self._statuses: dict[str, InstrumentStatusView] = {}
        self.books_ready = True
        self.dropped_subscribers = 0

    # -- subscribing -------------------------------------------------------------------

    def subscribe_trades(self, instrument: str) -> Subscription[TradeView]:
        """Trades of `instrument` from now on."""
        return self._register(self._trade_subscribers, instrument)

    def subscribe_book(
        self, instrument: str, depth: int = 0
    ) -> Subscription[BookSnapshot | BookUpdate]:
        """A snapshot of `instrument`'s book (`depth` levels a side, 0: all), then updates;
        `BookViewsNotReady` while the books are being rebuilt."""
        if not self.books_ready:
            raise BookViewsNotReady(NOT_READY)
        subscription = self._register(self._book_subscribers, instrument)
        book = self._books.setdefault(instrument, _PublishedBook())
        subscription.offer(book.snapshot(instrument, depth, self.instrument_status(instrument)))
        return subscription

    def subscribe_instrument_status(self, instrument: str) -> Subscription[InstrumentStatusView]:
        """`instrument`'s status now (a halt, say), then each change: taken and registered
        in one step, as a book snapshot is. Before any change the first item is TRADING,
        with an empty position and the epoch as its time."""
        subscription = self._register(self._status_subscribers, instrument)
        current = self._statuses.get(instrument) or InstrumentStatusView(
            instrument, TRADING, _NEVER, ""
        )
        subscription.offer(current)
        return subscription

    def instrument_status(self, instrument: str) -> str:
        """The status last published for `instrument` (TRADING when none was)."""
        current = self._statuses.get(instrument)
        return TRADING if current is None else current.status

    def subscribe_order_updates(
        self, user_id: str, instrument: str | None = None
    ) -> Subscription[OrderUpdate]:
        """Changes of `user_id`'s orders (optionally of one instrument) from now on."""
        subscription = self._register(self._order_subscribers, user_id)
        self._order_instrument_filter[subscription] = instrument or None
        return subscription

    def subscribe_balances(self, user_id: str) -> Subscription[BalanceSnapshot | BalanceView]:
        """A snapshot of `user_id`'s balances (every asset it has one in, by asset), then
        each balance after each change; `BookViewsNotReady` while the Redis views (which
        publish them) are being rebuilt. The snapshot is taken from the published balances
        in the same step as the registration, so no change falls between the two."""
        if not self.books_ready:
            raise BookViewsNotReady(BALANCES_NOT_READY)
        subscription = self._register(self._balance_subscribers, user_id)
        published = self._balances.get(user_id, {})
        balances = tuple(published[asset] for asset in sorted(published))
        position = max((b.position for b in balances), key=_position_order, default="")
        subscription.offer(BalanceSnapshot(user_id, balances, position))
        return subscription

    def published_balances(self, user_id: str) -> tuple[BalanceView, ...]:
        published = self._balances.get(user_id, {})
        return tuple(published[asset] for asset in sorted(published))

    def has_order_subscribers(self, user_id: str) -> bool:
        return user_id in self._order_subscribers

    def book_sequence(self, instrument: str) -> int:
        book = self._books.get(instrument)
        return 0 if book is None else book.sequence

    def subscriber_count(self) -> int:
        groups = (
            self._trade_subscribers,
            self._book_subscribers,
            self._order_subscribers,
            self._balance_subscribers,
            self._status_subscribers,
        )
        return sum(len(subscribers) for group in groups for subscribers in group.values())

    # -- publishing (builders) -----------------------------------------------------------

    def publish_trade(self, trade: TradeView) -> None:
        self._fan_out(self._trade_subscribers.get(trade.instrument), trade)

    def publish_order_update(self, update: OrderUpdate) -> None:
        subscribers = self._order_subscribers.get(update.order.user_id)
        if not subscribers:
            return
        instrument = update.order.instrument
        for subscription in tuple(subscribers):
            wanted = self._order_instrument_filter.get(subscription)
            if wanted is None or wanted == instrument:
                self._offer_or_drop(subscription, update)

    def publish_book_update(self, update: BookUpdate) -> None:
        """Apply and fan out one update; its sequence must follow the published one."""
        book = self._books.setdefault(update.instrument, _PublishedBook())
        if update.sequence != book.sequence + 1:
            # The builder restarted from older state (e.g. a rebuild): subscribers' books
            # no longer chain, so they must resubscribe.
            self._drop_all(self._book_subscribers.get(update.instrument))
        for change in update.changes:
            book.apply(change)
        book.sequence = update.sequence
        book.position = update.position
        self._fan_out(self._book_subscribers.get(update.instrument), update)

    def publish_balance(self, balance: BalanceView) -> None:
        """A balance after a change (the Redis builder, after its EXEC)."""
        self._balances.setdefault(balance.user_id, {})[balance.asset] = balance
        self._fan_out(self._balance_subscribers.get(balance.user_id), balance)

    def publish_instrument_status(self, status: InstrumentStatusView) -> None:
        """An instrument's status changed (the Redis builder, after its EXEC)."""
        self._statuses[status.instrument] = status
        self._fan_out(self._status_subscribers.get(status.instrument), status)

    def reset_instrument_statuses(self, statuses: list[InstrumentStatusView]) -> None:
        """Seed the published statuses from the builder's loaded state; a subscriber whose
        status is not what it was last sent is dropped (resubscribe)."""
        fresh = {status.instrument: status for status in statuses}
        for instrument in tuple(self._status_subscribers):
            if fresh.get(instrument) != self._statuses.get(instrument):
                self._drop_all(self._status_subscribers.get(instrument))
        self._statuses = fresh

    def reset_balances(self, balances: list[BalanceView]) -> None:
        """Seed the published balances from the builder's loaded state (at start or after a
        rebuild); a subscriber whose balances are not what it was last sent is dropped
        (`SubscriberLagged`: resubscribe for a new snapshot)."""
        fresh: dict[str, dict[str, BalanceView]] = {}
        for balance in balances:
            fresh.setdefault(balance.user_id, {})[balance.asset] = balance
        for user_id in tuple(self._balance_subscribers):
            if fresh.get(user_id, {}) != self._balances.get(user_id, {}):
                self._drop_all(self._balance_subscribers.get(user_id))
        self._balances = fresh

    def set_books_ready(self, ready: bool) -> None:
        """Whether new book subscriptions may start (False while the views are rebuilt)."""
        self.books_ready = ready

    def reset_book(
        self,
        instrument: str,
        bids: tuple[PriceLevel, ...],
        asks: tuple[PriceLevel, ...],
        sequence: int,
        position: str,
    ) -> None:
        """Seed the published book from the builder's loaded state (at start or restart)."""
        current = self._books.get(instrument)
        if current is not None and current.sequence != sequence:
            self._drop_all(self._book_subscribers.get(instrument))
        self._books[instrument] = _PublishedBook(
            sequence=sequence,
            position=position,
            bids={level.price: level for level in bids},
            asks={level.price: level for level in asks},
        )

    def close(self) -> None:
        """End every subscriber's stream (normally) and forget them."""
        _end_all(self._trade_subscribers)
        _end_all(self._book_subscribers)
        _end_all(self._order_subscribers)
        _end_all(self._balance_subscribers)
        _end_all(self._status_subscribers)
        self._order_instrument_filter.clear()
        self._count_subscribers()

    # -- internals -----------------------------------------------------------------------

    def _register(self, group: dict[str, set[Subscription[Item]]], key: str) -> Subscription[Item]:
        def forget(subscription: Subscription[Item]) -> None:
            subscribers = group.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del group[key]
            self._order_instrument_filter.pop(subscription, None)  # type: ignore[arg-type]
            self._count_subscribers()

        subscription: Subscription[Item] = Subscription(self._subscriber_buffer, forget)
        group.setdefault(key, set()).add(subscription)
        self._count_subscribers()
        return subscription

    def _count_subscribers(self) -> None:
        for stream, group in (
            ("trades", self._trade_subscribers),
            ("order_book", self._book_subscribers),
            ("orders", self._order_subscribers),
            ("balances", self._balance_subscribers),
            ("instrument_status", self._status_subscribers),
        ):
            metrics.set_stream_subscribers(stream, sum(len(s) for s in group.values()))

    def _fan_out(self, subscribers: set[Subscription[Item]] | None, item: Item) -> None:
        if not subscribers:
            return
        for subscription in tuple(subscribers):
            self._offer_or_drop(subscription, item)

    def _offer_or_drop(self, subscription: Subscription[Item], item: Item) -> None:
        if not subscription.offer(item) and subscription.lagged:
            self.dropped_subscribers += 1
            subscription.close_after_lag()

    def _drop_all(self, subscribers: set[Subscription[Item]] | None) -> None:
        if not subscribers:
            return
        for subscription in tuple(subscribers):
            subscription.lagged = True
            self.dropped_subscribers += 1
            subscription.close_after_lag()
