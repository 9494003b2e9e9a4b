"""Command handlers for money and venue controls: deposits, withdrawals, instrument status.

Like ``server.commands`` for orders: validate at the door (refusing exactly what the engine
runner's translation would), append a ``*Requested`` record, let the engine decide.

- A transfer is ``DepositRequested`` / ``WithdrawalRequested`` as the first event of
  ``transfer-<transfer_id>`` at expected version NO_STREAM, so a transfer id is used once.
  A retry with the same id and the same fields gets the original request back (and so
  the original outcome); the same id with other fields is ALREADY_EXISTS.
- A venue control is ``InstrumentStatusRequested`` on ``instrument-<symbol>``.
- With accounts off (``assets`` None) transfers are FAILED_PRECONDITION: nothing would
  hold them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from domain.assets import FEE_ACCOUNT, amount_to_units, units_to_text
from domain.errors import InvalidField
from domain.input_rules import shown
from domain.instruments import Instrument, InstrumentStatus
from server.errors import AccountsDisabled, IdempotencyConflict, InvalidArgument
from server.eventstore.port import (
    EventStore,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    WrongExpectedVersion,
)
from server.log_contract.layout import CORRELATION_ID, instrument_stream, transfer_stream
from server.log_contract.mapper import decode, encode
from server.log_contract.records import (
    DepositRequested,
    InstrumentStatusRequested,
    LogRecord,
    WithdrawalRequested,
)
from server.observability import metrics
from server.request_checks import known_instrument, require_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_OF = {status.value: status for status in InstrumentStatus}

TransferRequest = DepositRequested | WithdrawalRequested


@dataclass(frozen=True)
class WrittenRequest:
    """A request in the log: where, and its event id (what the engine's answers name as
    their cause, for waiting on them: ``server.outcomes``)."""

    position: LogPosition
    event_id: uuid.UUID
    record: LogRecord
    duplicate: bool = False


def _request_event(
    record: LogRecord, correlation_id: str, metadata: Mapping[str, str] | None
) -> NewEvent:
    event_type, data, schema = encode(record)
    return NewEvent(
        type=event_type,
        data=data,
        metadata={CORRELATION_ID: correlation_id, **schema, **(metadata or {})},
    )


def _terms(record: LogRecord) -> LogRecord:
    """What a transfer asks for, without when it was asked (the idempotency check)."""
    return msgspec.structs.replace(record, requested_at=_EPOCH)


class MoneyCommands:
    """Deposits, withdrawals and venue controls at the door."""

    def __init__(
        self,
        event_store: EventStore,
        instruments: Mapping[str, Instrument],
        assets: Mapping[str, int] | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        backend: str = "postgresql",
    ) -> None:
        self._event_store = event_store
        self._instruments = instruments
        self._assets = assets  # None: accounts off
        self._now = now
        self._backend = backend

    @property
    def accounts_enabled(self) -> bool:
        return self._assets is not None

    @property
    def assets(self) -> Mapping[str, int]:
        return self._assets or {}

    def known_asset(self, asset: str) -> int:
        """A configured asset's precision, or InvalidArgument naming the field."""
        if not asset:
            raise InvalidArgument.of("asset", "REQUIRED", "asset is required")
        precision = self.assets.get(asset)
        if precision is None:
            raise InvalidArgument.of("asset", "UNKNOWN_ASSET", f"unknown asset {shown(asset)}")
        return precision

    def _amount(self, asset: str, amount: str) -> Decimal:
        """The amount as the log holds it (the asset's precision), or InvalidArgument."""
        precision = self.known_asset(asset)
        if not amount:
            raise InvalidArgument.of("amount", "REQUIRED", "amount is required")
        try:
            units = amount_to_units(amount, precision)
        except InvalidField as error:
            raise InvalidArgument.from_field(error) from None
        return Decimal(units_to_text(units, precision))

    def transfer_record(
        self, kind: type[TransferRequest], user_id: str, asset: str, amount: str, transfer_id: str
    ) -> TransferRequest:
        """Validate a transfer and return the request the log will hold; no I/O."""
        if self._assets is None:
            raise AccountsDisabled("accounts are disabled on this venue (ACCOUNTS_ENABLED=0)")
        require_id("user_id", user_id)
        require_id("transfer_id", transfer_id)
        value = self._amount(asset, amount)
        return kind(
            user_id=user_id,
            requested_at=self._now(),
            transfer_id=transfer_id,
            asset=asset,
            amount=value,
        )

    async def deposit(
        self,
        user_id: str,
        asset: str,
        amount: str,
        transfer_id: str,
        metadata: Mapping[str, str] | None = None,
    ) -> WrittenRequest:
        record = self.transfer_record(DepositRequested, user_id, asset, amount, transfer_id)
        return await self._write_transfer(record, metadata)

    async def withdraw(
        self,
        user_id: str,
        asset: str,
        amount: str,
        transfer_id: str,
        metadata: Mapping[str, str] | None = None,
    ) -> WrittenRequest:
        record = self.transfer_record(WithdrawalRequested, user_id, asset, amount, transfer_id)
        return await self._write_transfer(record, metadata)

    async def _write_transfer(
        self, record: TransferRequest, metadata: Mapping[str, str] | None
    ) -> WrittenRequest:
        stream = transfer_stream(record.transfer_id)
        event = _request_event(record, stream, metadata)
        try:
            with metrics.time_append(self._backend, 1):
                result = await self._event_store.append(stream, [event], ExpectedVersion.NO_STREAM)
        except WrongExpectedVersion:
            return await self._original_transfer(record)
        return WrittenRequest(result.positions[0], event.event_id, record)

    async def _original_transfer(self, retry: TransferRequest) -> WrittenRequest:
        """The transfer a retry names, when it asks for exactly that transfer again."""
        events = await self._event_store.read_stream(transfer_stream(retry.transfer_id), 0, 1)
        original = decode(events[0]) if events else None
        if original is None or _terms(original) != _terms(retry):
            raise IdempotencyConflict(
                f"transfer_id {retry.transfer_id!r} already names another transfer"
            )
        return WrittenRequest(events[0].position, events[0].event_id, original, duplicate=True)

    async def set_instrument_status(
        self,
        admin_user_id: str,
        instrument: str,
        status: str,
        metadata: Mapping[str, str] | None = None,
    ) -> WrittenRequest:
        """An admin's venue control (TRADING, CANCEL_ONLY, HALTED) for `instrument`."""
        symbol = known_instrument(self._instruments, "instrument", instrument, required=True)
        assert symbol is not None
        if not status:
            raise InvalidArgument.of("status", "REQUIRED", "status is required")
        if status not in _STATUS_OF:
            raise InvalidArgument.of(
                "status", "MALFORMED", "status must be TRADING, CANCEL_ONLY or HALTED"
            )
        record = InstrumentStatusRequested(
            user_id=admin_user_id,
            requested_at=self._now(),
            symbol=symbol,
            status=_STATUS_OF[status],
        )
        stream = instrument_stream(symbol)
        event = _request_event(record, stream, metadata)
        with metrics.time_append(self._backend, 1):
            result = await self._event_store.append(stream, [event], ExpectedVersion.ANY)
        return WrittenRequest(result.positions[0], event.event_id, record)


def check_trading_account(user_id: str) -> None:
    """Orders are never placed for the venue's fee account (it only receives fees)."""
    if user_id == FEE_ACCOUNT:
        raise InvalidArgument.of(
            "user_id", "RESERVED_ACCOUNT", f"{FEE_ACCOUNT} is the venue's fee account"
        )
