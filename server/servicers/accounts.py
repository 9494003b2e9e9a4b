"""AccountService (an account's balances, ledger, balance stream and withdrawals) and the
money half of AdminService (deposits, withdrawals, venue controls).

Reads go to the read side's money views (``projections.balance_views.BalanceViews``, the
live balance feed); writes go through the door (``server.money_commands``) into the log,
and the answer waits for the engine's decision (``server.outcomes.OutcomeWaiter.
wait_caused``) and for the views to hold it, so a read after the answer sees its effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import grpc

from clients.generated.exchange.v1 import account_service_pb2 as pb
from clients.generated.exchange.v1 import account_service_pb2_grpc as pb_grpc
from clients.generated.exchange.v1 import admin_service_pb2 as admin_pb
from clients.generated.exchange.v1 import types_pb2
from domain.assets import unit_of
from projections.live import SubscriberLagged
from projections.views import BalanceSnapshot, BalanceView, LedgerEntryView
from server.errors import AccountsDisabled, InvalidArgument, Refused
from server.identity.access import acting_account, caller, readable_account
from server.log_contract.layout import transfer_stream
from server.log_contract.records import (
    FundsDeposited,
    FundsWithdrawn,
    InstrumentRejected,
    InstrumentStatusChanged,
    TransferRejected,
)
from server.money_commands import MoneyCommands, WrittenRequest
from server.outcomes import OutcomeWaiter
from server.request_checks import optional_id, page_size_of, require_id
from server.servicers.convert import decimal_text, timestamp_of
from server.servicers.queries import ReadYourWrites
from server.servicers.status import abort_refused

LAGGED = grpc.StatusCode.RESOURCE_EXHAUSTED
_CAUSE_VALUE = {
    "DEPOSIT": pb.LEDGER_CAUSE_DEPOSIT,
    "WITHDRAWAL": pb.LEDGER_CAUSE_WITHDRAWAL,
    "HOLD": pb.LEDGER_CAUSE_HOLD,
    "RELEASE": pb.LEDGER_CAUSE_RELEASE,
    "TRADE": pb.LEDGER_CAUSE_TRADE,
    "FEE": pb.LEDGER_CAUSE_FEE,
}
STATUS_VALUE = {
    "TRADING": types_pb2.INSTRUMENT_STATUS_TRADING,
    "CANCEL_ONLY": types_pb2.INSTRUMENT_STATUS_CANCEL_ONLY,
    "HALTED": types_pb2.INSTRUMENT_STATUS_HALTED,
}
STATUS_NAME = {value: name for name, value in STATUS_VALUE.items()}


def amount_text(value: Decimal, precision: int | None) -> str:
    """An amount with its asset's precision ("0.00" for USD at 2), whatever scale the view
    holds it at."""
    if precision is None:
        return decimal_text(value)
    return format(value.quantize(unit_of(precision)), "f")


def balance_message(balance: BalanceView, precision: int | None = None) -> pb.Balance:
    message = pb.Balance(
        user_id=balance.user_id,
        asset=balance.asset,
        available=amount_text(balance.available, precision),
        held=amount_text(balance.held, precision),
        position=balance.position,
    )
    stamp = timestamp_of(balance.updated_at)
    if stamp is not None:
        message.updated_at.CopyFrom(stamp)
    return message


def ledger_message(entry: LedgerEntryView, precision: int | None = None) -> pb.LedgerEntry:
    message = pb.LedgerEntry(
        entry_id=entry.entry_id,
        user_id=entry.user_id,
        asset=entry.asset,
        cause=_CAUSE_VALUE.get(entry.cause, pb.LEDGER_CAUSE_UNSPECIFIED),
        available_change=amount_text(entry.available_change, precision),
        held_change=amount_text(entry.held_change, precision),
        reference=entry.reference,
        position=entry.position,
    )
    stamp = timestamp_of(entry.at)
    if stamp is not None:
        message.at.CopyFrom(stamp)
    return message


class Transfers:
    """Writes a transfer and waits for the engine's decision on it (both services)."""

    def __init__(self, money: MoneyCommands, waiter: OutcomeWaiter, wait_s: float) -> None:
        self._money = money
        self._waiter = waiter
        self._wait_s = wait_s

    @property
    def money(self) -> MoneyCommands:
        return self._money

    def timeout(self, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        remaining = context.time_remaining()
        return self._wait_s if remaining is None else max(0.0, remaining - 0.005)

    async def answer(
        self, written: WrittenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Transfer:
        request: Any = written.record
        outcome = await self._waiter.wait_transfer(
            transfer_stream(request.transfer_id),
            written.position,
            written.event_id,
            self.timeout(context),
        )
        transfer = pb.Transfer(
            transfer_id=request.transfer_id,
            user_id=request.user_id,
            asset=request.asset,
            amount=decimal_text(request.amount),
            position=outcome.position.to_token(),
            duplicate=written.duplicate,
        )
        for result in outcome.results:
            if isinstance(result, FundsDeposited | FundsWithdrawn):
                transfer.status = pb.TRANSFER_STATUS_COMPLETED
            elif isinstance(result, TransferRejected):
                transfer.status = pb.TRANSFER_STATUS_REJECTED
                transfer.reason = result.reason
        return transfer


class AccountServicer(pb_grpc.AccountServiceServicer):
    def __init__(
        self,
        transfers: Transfers,
        balance_views: Any,
        live_feeds: Any,
        read_your_writes: ReadYourWrites,
    ) -> None:
        self._transfers = transfers
        self._views = balance_views
        self._feeds = live_feeds
        self._read_your_writes = read_your_writes

    @property
    def _assets(self) -> Mapping[str, int]:
        return self._transfers.money.assets

    def _balance(self, balance: BalanceView) -> pb.Balance:
        return balance_message(balance, self._assets.get(balance.asset))

    def _require_accounts(self) -> None:
        if not self._transfers.money.accounts_enabled:
            raise AccountsDisabled("accounts are disabled on this venue (ACCOUNTS_ENABLED=0)")

    async def GetBalances(
        self, request: pb.GetBalancesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetBalancesResponse:
        user_id = readable_account(request.user_id)
        self._require_accounts()
        await self._read_your_writes.wait(request.min_position, context.time_remaining())
        balances = await self._views.balances(user_id)
        return pb.GetBalancesResponse(balances=[self._balance(b) for b in balances])

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListLedgerEntriesResponse:
        user_id = readable_account(request.user_id)
        self._require_accounts()
        if request.asset:
            self._transfers.money.known_asset(request.asset)
        page_size = page_size_of(request.page_size)
        await self._read_your_writes.wait(request.min_position, context.time_remaining())
        try:
            entries, token = await self._views.ledger(
                user_id, request.asset or None, page_size, request.page_token or None
            )
        except ValueError as error:
            raise InvalidArgument.of("page_token", "MALFORMED", str(error)) from error
        return pb.ListLedgerEntriesResponse(
            entries=[ledger_message(entry, self._assets.get(entry.asset)) for entry in entries],
            next_page_token=token,
        )

    async def StreamBalanceUpdates(
        self,
        request: pb.StreamBalanceUpdatesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamBalanceUpdatesResponse]:
        try:
            optional_id("user_id", request.user_id)
            user_id = require_id("user_id", readable_account(request.user_id))
            self._require_accounts()
            subscription = self._feeds.subscribe_balances(user_id)
        except Refused as refusal:
            await abort_refused(context, refusal)
            return
        async with subscription:
            try:
                async for item in subscription:
                    if isinstance(item, BalanceSnapshot):
                        yield pb.StreamBalanceUpdatesResponse(
                            snapshot=pb.BalanceSnapshot(
                                balances=[self._balance(b) for b in item.balances],
                                position=item.position,
                            )
                        )
                    else:
                        yield pb.StreamBalanceUpdatesResponse(balance=self._balance(item))
            except SubscriberLagged as lagged:
                await context.abort(LAGGED, str(lagged))

    async def Withdraw(
        self, request: pb.WithdrawRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WithdrawResponse:
        user_id = acting_account(request.user_id)
        written = await self._transfers.money.withdraw(
            user_id, request.asset, request.amount, request.transfer_id
        )
        return pb.WithdrawResponse(transfer=await self._transfers.answer(written, context))


class AdminMoney:
    """AdminService's Deposit, Withdraw and SetInstrumentStatus."""

    def __init__(self, transfers: Transfers, waiter: OutcomeWaiter) -> None:
        self._transfers = transfers
        self._waiter = waiter

    async def deposit(
        self, request: admin_pb.DepositRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb.DepositResponse:
        written = await self._transfers.money.deposit(
            request.user_id, request.asset, request.amount, request.transfer_id
        )
        return admin_pb.DepositResponse(transfer=await self._transfers.answer(written, context))

    async def withdraw(
        self,
        request: admin_pb.AdminServiceWithdrawRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb.AdminServiceWithdrawResponse:
        written = await self._transfers.money.withdraw(
            request.user_id, request.asset, request.amount, request.transfer_id
        )
        return admin_pb.AdminServiceWithdrawResponse(
            transfer=await self._transfers.answer(written, context)
        )

    async def set_instrument_status(
        self,
        request: admin_pb.SetInstrumentStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb.SetInstrumentStatusResponse:
        status = STATUS_NAME.get(request.status)
        if status is None:
            raise InvalidArgument.of(
                "status", "REQUIRED", "status must be TRADING, CANCEL_ONLY or HALTED"
            )
        written = await self._transfers.money.set_instrument_status(
            caller().user_id, request.instrument, status
        )
        outcome = await self._waiter.wait_caused(
            written.position, written.event_id, self._transfers.timeout(context)
        )
        for result in outcome.results:
            if isinstance(result, InstrumentRejected):
                raise InvalidArgument.of("instrument", result.reason, result.reason)
            if isinstance(result, InstrumentStatusChanged):
                status = result.status.value
        return admin_pb.SetInstrumentStatusResponse(
            status=STATUS_VALUE[status], position=outcome.position.to_token()
        )
