"""The order queries as every transport runs them: whose orders, the door's checks, and
read-your-writes (waiting for a `min_position` token before reading the views).

The gRPC query servicer and the HTTP routes both call these; they get the read side's
value types (``projections.views``) and render them in their own wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.instruments import Instrument
from projections.views import BookView, OrderView, TradeView
from server.errors import InvalidArgument, OrderNotFound, PositionBeyondLog, Refused
from server.eventstore.port import EventStore
from server.identity.access import order_owner_filter, readable_account
from server.observability.consumer_failures import ConsumerFailures
from server.order_state import load_order_state
from server.request_checks import (
    known_instrument,
    log_position_of,
    optional_id,
    page_size_of,
    require_id,
)
from server.stuck_consumers import PROJECTION_CONSUMER_PREFIX, refuse_if_stuck_before

# Time kept back from a call's remaining time to answer "not yet" ourselves.
ANSWER_MARGIN_S = 0.005


class ViewsBehind(Refused):
    status = "DEADLINE_EXCEEDED"


class ReadYourWrites:
    """Waits until the views have committed a position token (bounded by the call's time,
    and by `max_wait_s` (MAX_READ_WAIT_S) whatever that is, so a far deadline cannot hold a
    call and its resources for long).
    No wait that could never end is started: a token beyond the log's last committed event
    is OUT_OF_RANGE, and one at or past the event a view builder is stuck at is UNAVAILABLE
    (until the event is repaired), both at once."""

    def __init__(
        self,
        progress: Any,
        event_store: EventStore,
        default_wait_s: float,
        failures: ConsumerFailures | None = None,
        max_wait_s: float | None = None,
    ) -> None:
        self._progress = progress
        self._max_wait_s = max_wait_s
        self.event_store = event_store
        self._default_wait_s = default_wait_s
        self._failures = failures

    async def wait(
        self, token: str, remaining_s: float | None, field: str = "min_position"
    ) -> None:
        """Return once the views hold `token` (none: at once); `remaining_s` is the call's
        time left (None: no deadline, the default wait applies)."""
        position = log_position_of(field, token)
        if position is None or self._progress.reached(position):
            return
        last = await self.event_store.last_committed_position()
        if last is None or position > last:
            raise PositionBeyondLog(f"{field} {token} is beyond the log's last event")
        refuse_if_stuck_before(
            self._failures, PROJECTION_CONSUMER_PREFIX, position, "the views are stopped"
        )
        timeout = (
            self._default_wait_s if remaining_s is None else max(0.0, remaining_s - ANSWER_MARGIN_S)
        )
        if self._max_wait_s is not None:
            timeout = min(timeout, self._max_wait_s)
        if not await self._progress.wait_for(position, timeout):
            raise ViewsBehind(f"views have not reached {token} yet")


class OrderReads:
    """One order, a user's orders, a book, trades and the instruments, as the caller's key
    may read them."""

    def __init__(
        self,
        order_views: Any,
        book_views: Any,
        read_your_writes: ReadYourWrites,
        instruments: Mapping[str, Instrument],
    ) -> None:
        self._orders = order_views
        self._books = book_views
        self.read_your_writes = read_your_writes
        self.instruments = instruments

    async def order(
        self,
        order_id: str,
        requested_user_id: str = "",
        min_position: str = "",
        remaining_s: float | None = None,
    ) -> OrderView:
        """The order; another account's order is NOT_FOUND (order ids cannot be probed)."""
        require_id("order_id", order_id)
        optional_id("user_id", requested_user_id)
        owner = order_owner_filter(requested_user_id)
        await self.read_your_writes.wait(min_position, remaining_s)
        order: OrderView | None = await self._orders.get_order(order_id)
        if order is None:
            order = await self._placed_but_not_in_the_views(order_id, owner, remaining_s)
        if order is None or (owner is not None and order.user_id != owner):
            raise OrderNotFound(order_id)
        return order

    async def _placed_but_not_in_the_views(
        self, order_id: str, owner: str | None, remaining_s: float | None
    ) -> OrderView | None:
        """An order id just answered by a place is never NOT_FOUND: when the views do not
        hold it yet but the log does, wait for the views to reach where it was placed (as
        with its `position` for min_position), then read them again. None: no such order
        (or another account's: the same answer)."""
        state = await load_order_state(self.read_your_writes.event_store, order_id)
        if state is None or state.placed_position is None:
            return None
        if owner is not None and state.user_id != owner:
            return None
        await self.read_your_writes.wait(state.placed_position.to_token(), remaining_s)
        order: OrderView | None = await self._orders.get_order(order_id)
        return order

    async def orders(
        self,
        requested_user_id: str = "",
        instrument: str = "",
        status: str | None = None,
        page_size: int = 0,
        page_token: str = "",
        min_position: str = "",
        remaining_s: float | None = None,
    ) -> tuple[list[OrderView], str]:
        """One page of an account's orders, most recent first, and the next page's token."""
        optional_id("user_id", requested_user_id)
        user_id = require_id("user_id", readable_account(requested_user_id))
        known_instrument(self.instruments, "instrument", instrument, required=False)
        size = page_size_of(page_size)
        await self.read_your_writes.wait(min_position, remaining_s)
        try:
            page: tuple[list[OrderView], str] = await self._orders.list_orders(
                user_id,
                instrument=instrument or None,
                status=status,
                page_size=size,
                page_token=page_token or None,
            )
        except ValueError as error:
            raise InvalidArgument.of("page_token", "MALFORMED", str(error)) from error
        return page

    async def book(
        self,
        instrument: str,
        depth: int = 0,
        min_position: str = "",
        remaining_s: float | None = None,
    ) -> BookView:
        known_instrument(self.instruments, "instrument", instrument, required=True)
        await self.read_your_writes.wait(min_position, remaining_s)
        book: BookView = await self._books.get_book(instrument, depth or None)
        return book

    async def trades(
        self,
        instrument: str,
        page_size: int = 0,
        page_token: str = "",
        min_position: str = "",
        remaining_s: float | None = None,
    ) -> tuple[list[TradeView], str]:
        """One page of an instrument's trades, most recent first, and the next page's token."""
        known_instrument(self.instruments, "instrument", instrument, required=True)
        size = page_size_of(page_size)
        await self.read_your_writes.wait(min_position, remaining_s)
        try:
            page: tuple[list[TradeView], str] = await self._orders.list_trades(
                instrument, page_size=size, page_token=page_token or None
            )
        except ValueError as error:
            raise InvalidArgument.of("page_token", "MALFORMED", str(error)) from error
        return page

    def instrument_list(self) -> list[Instrument]:
        return [self.instruments[symbol] for symbol in sorted(self.instruments)]
