"""The venue's own commands: instruments and assets, turning accounts on, deposits and
withdrawals, and the trading status of an instrument.

Like `domain.order_lifecycle`, each function takes the engine state and the command and
returns the events it caused; nothing here raises for a refused command: a refusal is an
event with a reason.
"""

from __future__ import annotations

from domain import reasons
from domain.accounts import Accounts, InstrumentMoney
from domain.assets import DEFAULT_PRECISION
from domain.commands import (
    AddAsset,
    AddInstrument,
    Deposit,
    EnableAccounts,
    SetInstrumentStatus,
    Withdraw,
)
from domain.engine_state import EngineState
from domain.errors import InvalidField
from domain.events import (
    AccountsEnabled,
    AccountsRejected,
    AssetAdded,
    AssetRejected,
    Event,
    FundsDeposited,
    FundsWithdrawn,
    InstrumentAdded,
    InstrumentRejected,
    InstrumentStatusChanged,
    TransferRejected,
)
from domain.instruments import Instrument, InstrumentStatus


def add_instrument(state: EngineState, command: AddInstrument) -> list[Event]:
    """Open a book. With accounts on, the instrument must name its assets (or have a
    BASE-QUOTE symbol) and a tick x lot must be a whole number of quote units."""
    instrument = command.instrument
    events: list[Event] = []
    accounts = state.accounts
    money: InstrumentMoney | None = None
    if accounts is not None:
        try:
            instrument = instrument.with_assets()
        except InvalidField:
            return [InstrumentRejected(instrument.symbol, reasons.ASSETS_REQUIRED)]
        money = _money_of(accounts, instrument, events)
        if money is None:
            return [InstrumentRejected(instrument.symbol, reasons.ASSET_PRECISION_TOO_FINE)]
    existing = state.books_by_symbol.get(instrument.symbol)
    if existing is not None:
        if existing.instrument == instrument:
            return []
        return [InstrumentRejected(instrument.symbol, reasons.INSTRUMENT_EXISTS)]
    state.open_book(instrument)
    if accounts is not None and money is not None:
        accounts.money_by_symbol[instrument.symbol] = money
    events.append(
        InstrumentAdded(
            instrument.symbol,
            instrument.tick_size,
            instrument.lot_size,
            instrument.min_quantity,
            instrument.base,
            instrument.quote,
            instrument.maker_fee_bps,
            instrument.taker_fee_bps,
        )
    )
    return events


def _money_of(
    accounts: Accounts, instrument: Instrument, events: list[Event]
) -> InstrumentMoney | None:
    """The instrument's money terms, meeting its assets; None (and no asset met) when a
    tick x lot or a lot is finer than an asset's unit."""
    assert instrument.base is not None and instrument.quote is not None
    known = accounts.precision_of_asset
    trial = dict(known)
    for asset in (instrument.base, instrument.quote):
        trial.setdefault(asset, DEFAULT_PRECISION)
    try:
        money = InstrumentMoney(instrument, trial)
    except InvalidField:
        return None
    accounts.meet_asset(instrument.base, events)
    accounts.meet_asset(instrument.quote, events)
    return money


def add_asset(state: EngineState, command: AddAsset) -> list[Event]:
    """Make an asset known with its precision (kept even while accounts are off, so the
    instruments added later can be checked against it)."""
    known = state.asset_precisions.get(command.asset)
    if known is not None:
        return (
            []
            if known == command.precision
            else [AssetRejected(command.asset, reasons.ASSET_EXISTS)]
        )
    state.asset_precisions[command.asset] = command.precision
    return [AssetAdded(command.asset, command.precision)]


def enable_accounts(state: EngineState, command: EnableAccounts) -> list[Event]:
    """Turn balances on, before any order: an engine with orders would hold nothing for
    them. Every book must be fundable (assets known or derivable)."""
    if state.accounts is not None:
        return []
    now = state.now
    if state.arrivals:
        return [AccountsRejected(reasons.ORDERS_EXIST, now)]
    accounts = Accounts(state.asset_precisions)
    events: list[Event] = []
    instruments: list[tuple[Instrument, InstrumentMoney]] = []
    for book in state.books_by_symbol.values():
        try:
            instrument = book.instrument.with_assets()
        except InvalidField:
            return [AccountsRejected(reasons.ASSETS_REQUIRED, now)]
        money = _money_of(accounts, instrument, events)
        if money is None:
            return [AccountsRejected(reasons.ASSET_PRECISION_TOO_FINE, now)]
        instruments.append((instrument, money))
    for instrument, money in instruments:
        state.books_by_symbol[instrument.symbol].instrument = instrument
        state.instruments_by_symbol[instrument.symbol] = instrument
        accounts.money_by_symbol[instrument.symbol] = money
    state.accounts = accounts
    events.append(AccountsEnabled(now))
    return events


def deposit(state: EngineState, command: Deposit) -> list[Event]:
    accounts = state.accounts
    now = state.now
    reason = _transfer_refusal(accounts, command.transfer_id)
    if reason is not None or accounts is None:
        return [_transfer_rejected(command, reason or reasons.ACCOUNTS_DISABLED, now)]
    events: list[Event] = []
    accounts.meet_asset(command.asset, events)
    accounts.transfer_ids.add(command.transfer_id)
    accounts.balance(command.user_id, command.asset).available += command.amount
    events.append(
        FundsDeposited(command.transfer_id, command.user_id, command.asset, command.amount, now)
    )
    return events


def withdraw(state: EngineState, command: Withdraw) -> list[Event]:
    accounts = state.accounts
    now = state.now
    reason = _transfer_refusal(accounts, command.transfer_id)
    if reason is not None or accounts is None:
        return [_transfer_rejected(command, reason or reasons.ACCOUNTS_DISABLED, now)]
    balance = accounts.balances.get((command.user_id, command.asset))
    if balance is None or balance.available < command.amount:
        return [_transfer_rejected(command, reasons.INSUFFICIENT_FUNDS, now)]
    accounts.transfer_ids.add(command.transfer_id)
    balance.available -= command.amount
    return [
        FundsWithdrawn(command.transfer_id, command.user_id, command.asset, command.amount, now)
    ]


def _transfer_refusal(accounts: Accounts | None, transfer_id: str) -> str | None:
    if accounts is None:
        return reasons.ACCOUNTS_DISABLED
    if transfer_id in accounts.transfer_ids:
        return reasons.DUPLICATE_TRANSFER_ID
    return None


def _transfer_rejected(command: Deposit | Withdraw, reason: str, now: int) -> TransferRejected:
    return TransferRejected(
        command.transfer_id, command.user_id, command.asset, command.amount, reason, now
    )


def set_instrument_status(state: EngineState, command: SetInstrumentStatus) -> list[Event]:
    symbol = command.instrument
    if symbol not in state.books_by_symbol:
        return [InstrumentRejected(symbol, reasons.UNKNOWN_INSTRUMENT)]
    status = command.status
    current = state.not_trading.get(symbol, InstrumentStatus.TRADING)
    if status is current:
        return []
    if status is InstrumentStatus.TRADING:
        del state.not_trading[symbol]
    else:
        state.not_trading[symbol] = status
    return [InstrumentStatusChanged(symbol, status, state.now)]
