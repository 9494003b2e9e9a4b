"""Pure fold of the money events into balances and ledger entries (no I/O).

Both builders use it: the PostgreSQL one over the balances a batch touches (loaded first),
the Redis one over every balance (held in memory). The rules are the log contract's
("Money and venue controls" in docs/log-contract.md):

- `FundsDeposited`: available += amount (DEPOSIT, reference: the transfer id).
- `FundsWithdrawn`: available -= amount (WITHDRAWAL, the transfer id).
- `FundsHeld`: available -= amount, held += amount (HOLD, the order id).
- `FundsReleased`: the reverse (RELEASE, the order id).
- `TradeSettled` (reference: the trade id): the buyer's quote held -= buyer_held_used and
  available += buyer_held_used - quote_amount (TRADE), then available -= buyer_fee (FEE);
  the buyer's base available += base_amount (TRADE); the seller's base held -=
  seller_held_used and available += seller_held_used - base_amount (TRADE); the seller's
  quote available += quote_amount (TRADE), then -= seller_fee (FEE); the fee account's quote
  available += each fee (FEE, one entry per side that paid one).

An entry changing nothing (a zero fee) is not written. An event at or before the position a
balance already carries is skipped for that balance: applying a batch twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.assets import FEE_ACCOUNT
from projections.log_events import LogEvent, position_token, record_of
from projections.views import (
    DEPOSIT,
    FEE,
    HOLD,
    RELEASE,
    TRADE,
    WITHDRAWAL,
    BalanceView,
    LedgerEntryView,
)
from server.log_contract import records as rec

ZERO = Decimal(0)
BalanceKey = tuple[str, str]  # (user_id, asset)


@dataclass
class BalanceState:
    """One balance while a batch is reduced; `position` orders it against events."""

    user_id: str
    asset: str
    available: Decimal = ZERO
    held: Decimal = ZERO
    updated_at: datetime | None = None
    position: Any | None = None  # a LogPosition (ordered), None before the first change

    def to_view(self) -> BalanceView:
        assert self.updated_at is not None
        return BalanceView(
            self.user_id,
            self.asset,
            self.available,
            self.held,
            self.updated_at,
            "" if self.position is None else position_token(self.position),
        )


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A ledger entry before the builder numbers it (`entry_id` is its row counter)."""

    user_id: str
    asset: str
    cause: str
    available_change: Decimal
    held_change: Decimal
    reference: str
    at: datetime
    position: str
    index: int  # its place among the entries of its event

    def numbered(self, entry_id: int) -> LedgerEntryView:
        return LedgerEntryView(
            entry_id,
            self.user_id,
            self.asset,
            self.cause,
            self.available_change,
            self.held_change,
            self.reference,
            self.at,
            self.position,
        )


@dataclass
class ReducedBalances:
    """What a batch changed: the balances (first-seen order) and the new ledger entries."""

    changed: list[BalanceKey] = field(default_factory=list)
    entries: list[NewEntry] = field(default_factory=list)


# Each money record with the balances it may touch (so the PostgreSQL builder loads them).
MONEY_RECORDS: tuple[type[rec.LogRecord], ...] = (
    rec.FundsDeposited,
    rec.FundsWithdrawn,
    rec.FundsHeld,
    rec.FundsReleased,
    rec.TradeSettled,
)
MONEY_EVENT_TYPES = frozenset(record.__name__ for record in MONEY_RECORDS)


def touched_keys(record: rec.LogRecord) -> list[BalanceKey]:
    """The balances a money record changes."""
    if isinstance(record, rec.TradeSettled):
        return [
            (record.buyer_user_id, record.quote_asset),
            (record.buyer_user_id, record.base_asset),
            (record.seller_user_id, record.base_asset),
            (record.seller_user_id, record.quote_asset),
            (FEE_ACCOUNT, record.quote_asset),
        ]
    if isinstance(
        record, rec.FundsDeposited | rec.FundsWithdrawn | rec.FundsHeld | rec.FundsReleased
    ):
        return [(record.user_id, record.asset)]
    return []


class BalancesReducer:
    """Applies money events to the balances it was given (creating the ones it meets)."""

    def __init__(self, balances: Mapping[BalanceKey, BalanceState] | None = None) -> None:
        self.balances: dict[BalanceKey, BalanceState] = dict(balances or {})
        self.batch = ReducedBalances()
        self._changed: set[BalanceKey] = set()

    def apply(self, event: LogEvent) -> None:
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, record_of(event), event)

    def apply_record(self, record: rec.LogRecord, event: LogEvent) -> None:
        """`apply` for an event already decoded (`record` is `record_of(event)`)."""
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, record, event)

    def take(self) -> ReducedBalances:
        """What changed since the last `take`."""
        batch, self.batch = self.batch, ReducedBalances()
        self._changed = set()
        return batch

    # -- handlers ---------------------------------------------------------------------------

    def _on_deposited(self, record: Any, event: LogEvent) -> None:
        deposited: rec.FundsDeposited = record
        with _Change(self, event, deposited.transfer_id, deposited.deposited_at) as change:
            change(deposited.user_id, deposited.asset, DEPOSIT, deposited.amount, ZERO)

    def _on_withdrawn(self, record: Any, event: LogEvent) -> None:
        withdrawn: rec.FundsWithdrawn = record
        with _Change(self, event, withdrawn.transfer_id, withdrawn.withdrawn_at) as change:
            change(withdrawn.user_id, withdrawn.asset, WITHDRAWAL, -withdrawn.amount, ZERO)

    def _on_held(self, record: Any, event: LogEvent) -> None:
        held: rec.FundsHeld = record
        with _Change(self, event, held.order_id, held.held_at) as change:
            change(held.user_id, held.asset, HOLD, -held.amount, held.amount)

    def _on_released(self, record: Any, event: LogEvent) -> None:
        released: rec.FundsReleased = record
        with _Change(self, event, released.order_id, released.released_at) as change:
            change(released.user_id, released.asset, RELEASE, released.amount, -released.amount)

    def _on_settled(self, record: Any, event: LogEvent) -> None:
        s: rec.TradeSettled = record
        buyer, seller, base, quote = s.buyer_user_id, s.seller_user_id, s.base_asset, s.quote_asset
        with _Change(self, event, s.trade_id, s.settled_at) as change:
            change(buyer, quote, TRADE, s.buyer_held_used - s.quote_amount, -s.buyer_held_used)
            change(buyer, quote, FEE, -s.buyer_fee, ZERO)
            change(buyer, base, TRADE, s.base_amount, ZERO)
            change(seller, base, TRADE, s.seller_held_used - s.base_amount, -s.seller_held_used)
            change(seller, quote, TRADE, s.quote_amount, ZERO)
            change(seller, quote, FEE, -s.seller_fee, ZERO)
            change(FEE_ACCOUNT, quote, FEE, s.buyer_fee, ZERO)
            change(FEE_ACCOUNT, quote, FEE, s.seller_fee, ZERO)

    # -- helpers ----------------------------------------------------------------------------

    def state(self, user_id: str, asset: str) -> BalanceState:
        key = (user_id, asset)
        state = self.balances.get(key)
        if state is None:
            state = self.balances[key] = BalanceState(user_id, asset)
        return state

    def mark_changed(self, key: BalanceKey) -> None:
        if key not in self._changed:
            self._changed.add(key)
            self.batch.changed.append(key)


class _Change:
    """The entries of one event: `change(user, asset, cause, available, held)` applies one
    (skipping balances that already hold this event); on exit every balance it touched
    carries the event's position."""

    def __init__(
        self, reducer: BalancesReducer, event: LogEvent, reference: str, at: datetime
    ) -> None:
        self._reducer = reducer
        self._position = event.position
        self._token = position_token(event.position)
        self._reference = reference
        self._at = at
        self._index = 0
        self._touched: dict[BalanceKey, BalanceState] = {}
        self._skipped: set[BalanceKey] = set()

    def __enter__(self) -> Callable[[str, str, str, Decimal, Decimal], None]:
        return self._change

    def _change(
        self, user_id: str, asset: str, cause: str, available: Decimal, held: Decimal
    ) -> None:
        if available == 0 and held == 0:
            return
        state = self._reducer.state(user_id, asset)
        key = (user_id, asset)
        if key in self._skipped or (
            key not in self._touched
            and state.position is not None
            and not state.position < self._position
        ):
            self._skipped.add(key)  # this balance already holds the event
            return
        state.available += available
        state.held += held
        self._touched[key] = state
        self._reducer.batch.entries.append(
            NewEntry(
                user_id,
                asset,
                cause,
                available,
                held,
                self._reference,
                self._at,
                self._token,
                self._index,
            )
        )
        self._index += 1

    def __exit__(self, *exc_info: object) -> None:
        for key, state in self._touched.items():
            state.position = self._position
            state.updated_at = self._at
            self._reducer.mark_changed(key)


_HANDLERS: dict[str, Callable[[BalancesReducer, Any, LogEvent], None]] = {
    rec.FundsDeposited.__name__: BalancesReducer._on_deposited,
    rec.FundsWithdrawn.__name__: BalancesReducer._on_withdrawn,
    rec.FundsHeld.__name__: BalancesReducer._on_held,
    rec.FundsReleased.__name__: BalancesReducer._on_released,
    rec.TradeSettled.__name__: BalancesReducer._on_settled,
}
