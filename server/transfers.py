"""Deposits, withdrawals and venue controls as every transport runs them: written through
the door (``server.money_commands``), then answered with the engine's decision once the
views hold it (``server.outcomes``), so a read after the answer sees its effect.

The gRPC AccountService/AdminService and the HTTP routes both call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from server.errors import InvalidArgument
from server.identity.access import acting_account, caller
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

# Time kept back from a call's remaining time to answer "not yet" ourselves.
ANSWER_MARGIN_S = 0.005


@dataclass(frozen=True, slots=True)
class TransferAnswer:
    """A transfer as the engine decided it: COMPLETED, or REJECTED with a reason."""

    transfer_id: str
    user_id: str
    asset: str
    amount: Decimal
    status: str  # COMPLETED, REJECTED ("" if the engine's answer named neither)
    reason: str
    position: str  # read it back with min_position
    duplicate: bool  # a retry of a transfer already written


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    instrument: str
    status: str
    position: str


class Transfers:
    def __init__(self, money: MoneyCommands, waiter: OutcomeWaiter, wait_s: float) -> None:
        self._money = money
        self._waiter = waiter
        self._wait_s = wait_s

    @property
    def money(self) -> MoneyCommands:
        return self._money

    def timeout(self, remaining_s: float | None) -> float:
        return self._wait_s if remaining_s is None else max(0.0, remaining_s - ANSWER_MARGIN_S)

    async def _answer(self, written: WrittenRequest, remaining_s: float | None) -> TransferAnswer:
        request: Any = written.record
        outcome = await self._waiter.wait_transfer(
            transfer_stream(request.transfer_id),
            written.position,
            written.event_id,
            self.timeout(remaining_s),
        )
        status, reason = "", ""
        for result in outcome.results:
            if isinstance(result, FundsDeposited | FundsWithdrawn):
                status = "COMPLETED"
            elif isinstance(result, TransferRejected):
                status, reason = "REJECTED", result.reason
        return TransferAnswer(
            request.transfer_id,
            request.user_id,
            request.asset,
            request.amount,
            status,
            reason,
            outcome.position.to_token(),
            written.duplicate,
        )

    async def deposit(
        self,
        user_id: str,
        asset: str,
        amount: str,
        transfer_id: str,
        remaining_s: float | None = None,
    ) -> TransferAnswer:
        """An admin's deposit into any account."""
        written = await self._money.deposit(user_id, asset, amount, transfer_id)
        return await self._answer(written, remaining_s)

    async def withdraw(
        self,
        user_id: str,
        asset: str,
        amount: str,
        transfer_id: str,
        remaining_s: float | None = None,
    ) -> TransferAnswer:
        """An admin's withdrawal from any account."""
        written = await self._money.withdraw(user_id, asset, amount, transfer_id)
        return await self._answer(written, remaining_s)

    async def withdraw_own(
        self,
        requested_user_id: str,
        asset: str,
        amount: str,
        transfer_id: str,
        remaining_s: float | None = None,
    ) -> TransferAnswer:
        """A withdrawal from the key's own account (naming another is PERMISSION_DENIED)."""
        user_id = acting_account(requested_user_id)
        return await self.withdraw(user_id, asset, amount, transfer_id, remaining_s)

    async def set_instrument_status(
        self, instrument: str, status: str, remaining_s: float | None = None
    ) -> StatusAnswer:
        """An admin's venue control: the instrument's status once the engine set it."""
        written = await self._money.set_instrument_status(caller().user_id, instrument, status)
        outcome = await self._waiter.wait_caused(
            written.position, written.event_id, self.timeout(remaining_s)
        )
        for result in outcome.results:
            if isinstance(result, InstrumentRejected):
                raise InvalidArgument.of("instrument", result.reason, result.reason)
            if isinstance(result, InstrumentStatusChanged):
                status = result.status.value
        record: Any = written.record
        return StatusAnswer(record.symbol, status, outcome.position.to_token())
