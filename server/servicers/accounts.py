"""AccountService (an account's balances, ledger, balance stream and withdrawals) and the
money half of AdminService (deposits, withdrawals, venue controls), as protobuf.

The use cases are the transports' shared ones: reads in ``server.account_reads``, writes
(answered with the engine's decision once the views hold it) in ``server.transfers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from clients.generated.exchange.v1 import account_service_pb2 as pb
from clients.generated.exchange.v1 import account_service_pb2_grpc as pb_grpc
from clients.generated.exchange.v1 import admin_service_pb2 as admin_pb
from clients.generated.exchange.v1 import types_pb2
from projections.live import SubscriberLagged
from projections.views import BalanceSnapshot, BalanceView, LedgerEntryView
from server.account_reads import AccountReads, amount_text
from server.errors import InvalidArgument, Refused
from server.servicers.convert import decimal_text, timestamp_of
from server.servicers.status import abort_refused
from server.transfers import TransferAnswer, Transfers

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
_TRANSFER_STATUS = {
    "COMPLETED": pb.TRANSFER_STATUS_COMPLETED,
    "REJECTED": pb.TRANSFER_STATUS_REJECTED,
}


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


def transfer_message(answer: TransferAnswer) -> pb.Transfer:
    return pb.Transfer(
        transfer_id=answer.transfer_id,
        user_id=answer.user_id,
        asset=answer.asset,
        amount=decimal_text(answer.amount),
        position=answer.position,
        duplicate=answer.duplicate,
        status=_TRANSFER_STATUS.get(answer.status, pb.TRANSFER_STATUS_UNSPECIFIED),
        reason=answer.reason,
    )


class AccountServicer(pb_grpc.AccountServiceServicer):
    def __init__(self, transfers: Transfers, reads: AccountReads) -> None:
        self._transfers = transfers
        self._reads = reads

    def _balance(self, balance: BalanceView) -> pb.Balance:
        return balance_message(balance, self._reads.assets.get(balance.asset))

    async def GetBalances(
        self, request: pb.GetBalancesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetBalancesResponse:
        balances = await self._reads.balances(
            request.user_id, request.min_position, context.time_remaining()
        )
        return pb.GetBalancesResponse(balances=[self._balance(b) for b in balances])

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListLedgerEntriesResponse:
        entries, token = await self._reads.ledger(
            request.user_id,
            request.asset,
            request.page_size,
            request.page_token,
            request.min_position,
            context.time_remaining(),
        )
        assets = self._reads.assets
        return pb.ListLedgerEntriesResponse(
            entries=[ledger_message(entry, assets.get(entry.asset)) for entry in entries],
            next_page_token=token,
        )

    async def StreamBalanceUpdates(
        self,
        request: pb.StreamBalanceUpdatesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamBalanceUpdatesResponse]:
        try:
            subscription = self._reads.balance_feed(request.user_id)
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
        answer = await self._transfers.withdraw_own(
            request.user_id,
            request.asset,
            request.amount,
            request.transfer_id,
            context.time_remaining(),
        )
        return pb.WithdrawResponse(transfer=transfer_message(answer))


class AdminMoney:
    """AdminService's Deposit, Withdraw and SetInstrumentStatus."""

    def __init__(self, transfers: Transfers) -> None:
        self._transfers = transfers

    async def deposit(
        self, request: admin_pb.DepositRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb.DepositResponse:
        answer = await self._transfers.deposit(
            request.user_id,
            request.asset,
            request.amount,
            request.transfer_id,
            context.time_remaining(),
        )
        return admin_pb.DepositResponse(transfer=transfer_message(answer))

    async def withdraw(
        self,
        request: admin_pb.AdminServiceWithdrawRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb.AdminServiceWithdrawResponse:
        answer = await self._transfers.withdraw(
            request.user_id,
            request.asset,
            request.amount,
            request.transfer_id,
            context.time_remaining(),
        )
        return admin_pb.AdminServiceWithdrawResponse(transfer=transfer_message(answer))

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
        answer = await self._transfers.set_instrument_status(
            request.instrument, status, context.time_remaining()
        )
        return admin_pb.SetInstrumentStatusResponse(
            status=STATUS_VALUE[answer.status], position=answer.position
        )
