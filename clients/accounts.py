"""The client's view of accounts: balances, ledger entries and transfers as typed values
(Decimal amounts, aware datetimes), converted from the AccountService / AdminService wire
messages. `clients.client.ExchangeClient` returns these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from clients.generated.exchange.v1 import account_service_pb2, types_pb2

_CAUSE_NAMES = {
    value: name.removeprefix("LEDGER_CAUSE_")
    for name, value in account_service_pb2.LedgerCause.items()
}
_TRANSFER_STATUS_NAMES = {
    value: name.removeprefix("TRANSFER_STATUS_")
    for name, value in account_service_pb2.TransferStatus.items()
}
INSTRUMENT_STATUS_VALUES = {
    "TRADING": types_pb2.INSTRUMENT_STATUS_TRADING,
    "CANCEL_ONLY": types_pb2.INSTRUMENT_STATUS_CANCEL_ONLY,
    "HALTED": types_pb2.INSTRUMENT_STATUS_HALTED,
}
INSTRUMENT_STATUS_NAMES = {value: name for name, value in INSTRUMENT_STATUS_VALUES.items()}


@dataclass(frozen=True, slots=True)
class Balance:
    user_id: str
    asset: str
    available: Decimal
    held: Decimal
    updated_at: datetime | None
    position: str


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One change of one balance: its cause (DEPOSIT, WITHDRAWAL, HOLD, RELEASE, TRADE,
    FEE) and what caused it (`reference`: a transfer, order or trade id)."""

    entry_id: int
    user_id: str
    asset: str
    cause: str
    available_change: Decimal
    held_change: Decimal
    reference: str
    at: datetime | None
    position: str


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: tuple[LedgerEntry, ...]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """A deposit or withdrawal and the engine's decision (COMPLETED or REJECTED)."""

    transfer_id: str
    user_id: str
    asset: str
    amount: Decimal
    status: str
    reason: str
    position: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class InstrumentStatusSet:
    instrument: str
    status: str
    position: str


def _time(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def _decimal(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def balance_from_wire(message: Any) -> Balance:
    return Balance(
        user_id=message.user_id,
        asset=message.asset,
        available=_decimal(message.available),
        held=_decimal(message.held),
        updated_at=_time(message, "updated_at"),
        position=message.position,
    )


def ledger_entry_from_wire(message: Any) -> LedgerEntry:
    return LedgerEntry(
        entry_id=message.entry_id,
        user_id=message.user_id,
        asset=message.asset,
        cause=_CAUSE_NAMES.get(message.cause, "UNSPECIFIED"),
        available_change=_decimal(message.available_change),
        held_change=_decimal(message.held_change),
        reference=message.reference,
        at=_time(message, "at"),
        position=message.position,
    )


def transfer_from_wire(message: Any) -> Transfer:
    return Transfer(
        transfer_id=message.transfer_id,
        user_id=message.user_id,
        asset=message.asset,
        amount=_decimal(message.amount),
        status=_TRANSFER_STATUS_NAMES.get(message.status, "UNSPECIFIED"),
        reason=message.reason,
        position=message.position,
        duplicate=message.duplicate,
    )
