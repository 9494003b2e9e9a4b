"""The matching engine: a deterministic state machine from commands to events.

`MatchingEngine.handle(command)` routes each command to the function that handles it and
returns the events it caused; it is the only way the engine's state changes. `snapshot()`
and `restore()` save and load the whole state as plain JSON-able data. No clock, no I/O:
time moves only by `AdvanceTime`, so the same commands always produce the same events.

Where the work is done:
- `domain.engine_state`: what the engine holds, and the bookkeeping shared by all parts;
- `domain.order_lifecycle`: place, amend, cancel, cancel-all, expiry, stop triggering;
- `domain.validation`: the checks that reject an order or amend with a reason code;
- `domain.matching`: crossing an incoming order against the book (fills, self-trade
  prevention, FOK, the slippage bound);
- `domain.snapshot`: the state to and from JSON-able data;
- `domain.book`: one instrument's book (levels, queues, the waiting-stop index);
- `domain.book_deltas`: with book deltas on, each command's net level changes as
  `BookLevelsChanged` events, after the command's other events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from domain.book_deltas import append_book_deltas
from domain.commands import (
    AddAsset,
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Deposit,
    EnableAccounts,
    PlaceOrder,
    SetInstrumentStatus,
    Withdraw,
)
from domain.engine_state import EngineState
from domain.events import Event
from domain.instruments import Instrument, InstrumentStatus
from domain.order_lifecycle import advance_time, amend, cancel, cancel_all, place
from domain.orders import Order, OrderStatus, OrderType
from domain.snapshot import snapshot_of, state_from_snapshot
from domain.venue_commands import (
    add_asset,
    add_instrument,
    deposit,
    enable_accounts,
    set_instrument_status,
    withdraw,
)

_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET


class MatchingEngine:
    """One book per instrument, the engine clock, and every open order by id."""

    __slots__ = ("_state",)

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        closed_order_memory: int | None = None,
        book_deltas: bool = False,
    ) -> None:
        """`closed_order_memory`: how many closed order ids to remember (for
        DUPLICATE_ORDER_ID and ORDER_CLOSED); None remembers all. The oldest are forgotten
        when the clock advances, so memory and snapshots stay bounded in a long-running
        service (which must then keep order ids unique itself).

        `book_deltas`: end each command that changed resting levels with one
        `BookLevelsChanged` per instrument it changed (see `domain.book_deltas`). Off by
        default, so the events of the replayer and of existing logs stay as they were."""
        self._state = EngineState(closed_order_memory)
        if book_deltas:
            self._state.turn_on_book_deltas()
        for instrument in instruments:
            self._state.open_book(instrument)

    # ------------------------------------------------------------------ commands

    def handle(self, command: Command) -> list[Event]:
        """Apply a command; return the events it caused. Rejections are events."""
        state = self._state
        kind = type(command)
        events: list[Event]
        if kind is PlaceOrder:
            events = place(state, command)  # type: ignore[arg-type]
        elif kind is CancelOrder:
            events = cancel(state, command)  # type: ignore[arg-type]
        elif kind is AmendOrder:
            events = amend(state, command)  # type: ignore[arg-type]
        elif kind is AdvanceTime:
            events = advance_time(state, command)  # type: ignore[arg-type]
        elif kind is CancelAllOrders:
            events = cancel_all(state, command)  # type: ignore[arg-type]
        elif kind is AddInstrument:
            return add_instrument(state, command)  # type: ignore[arg-type]
        elif kind is Deposit:
            return deposit(state, command)  # type: ignore[arg-type]
        elif kind is Withdraw:
            return withdraw(state, command)  # type: ignore[arg-type]
        elif kind is SetInstrumentStatus:
            return set_instrument_status(state, command)  # type: ignore[arg-type]
        elif kind is AddAsset:
            return add_asset(state, command)  # type: ignore[arg-type]
        elif kind is EnableAccounts:
            return enable_accounts(state, command)  # type: ignore[arg-type]
        else:
            raise TypeError(f"not a command: {command!r}")
        if state.touched_books:  # never with book deltas off
            append_book_deltas(state.touched_books, events, state.now)
        return events

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data; `restore` turns it back into an engine."""
        return snapshot_of(self._state)

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], book_deltas: bool = False) -> MatchingEngine:
        """The engine a snapshot describes; `book_deltas` as for the constructor (each
        book's delta sequence goes on from the snapshot's)."""
        engine = cls()
        engine._state = state_from_snapshot(snapshot)
        if book_deltas:
            engine._state.turn_on_book_deltas()
        return engine

    # ------------------------------------------------------------------ queries

    @property
    def now(self) -> int:
        """Engine time, nanoseconds since the Unix epoch."""
        return self._state.now

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by symbol (a live view: do not modify)."""
        return self._state.instruments_by_symbol

    def book_levels(
        self, instrument: str, depth: int = 10
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Aggregated levels best first: (price_ticks, total_lots, order_count) per level."""
        book = self._state.books_by_symbol[instrument]
        return book.bids.depth(depth), book.asks.depth(depth)

    def open_order(self, order_id: str) -> Order | None:
        """The engine's live record of an open order (read only), or None."""
        return self._state.open_orders_by_id.get(order_id)

    def instrument_of(self, order_id: str) -> str | None:
        """Instrument of an open order, or None when the order is not open."""
        order = self._state.open_orders_by_id.get(order_id)
        return None if order is None else order.instrument

    def order_status(self, order_id: str) -> OrderStatus | None:
        """The order's status (see `OrderStatus`); None for an id the engine does not know
        (or no longer remembers)."""
        order = self._state.open_orders_by_id.get(order_id)
        if order is None:
            return self._state.closed_status_by_id.get(order_id)
        if order.order_type is not _LIMIT and order.order_type is not _MARKET:
            if not order.triggered:
                return OrderStatus.TRIGGER_PENDING
            if order.filled == 0:
                return OrderStatus.TRIGGERED
        return OrderStatus.PARTIALLY_FILLED if order.filled else OrderStatus.OPEN

    @property
    def accounts_enabled(self) -> bool:
        return self._state.accounts is not None

    @property
    def assets(self) -> Mapping[str, int]:
        """Every known asset's precision (a live view: do not modify)."""
        return self._state.asset_precisions

    def balance(self, user_id: str, asset: str) -> tuple[int, int]:
        """(available, held) of an account in an asset, in units; (0, 0) when it has none
        or accounts are off."""
        accounts = self._state.accounts
        balance = None if accounts is None else accounts.balances.get((user_id, asset))
        return (0, 0) if balance is None else (balance.available, balance.held)

    def balances(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Every (account, asset) -> (available, held), in units."""
        accounts = self._state.accounts
        if accounts is None:
            return {}
        return {key: (b.available, b.held) for key, b in accounts.balances.items()}

    def instrument_status(self, instrument: str) -> InstrumentStatus:
        return self._state.not_trading.get(instrument, InstrumentStatus.TRADING)

    def last_price(self, instrument: str) -> int | None:
        """The price of the instrument's last trade, in ticks; None before the first."""
        return self._state.books_by_symbol[instrument].last_price
