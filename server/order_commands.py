"""The order commands as every transport runs them: whose account, the handlers, the
command metrics, and (when asked) the wait for the engine's outcome.

The gRPC servicers and the HTTP routes both call these, so a command means the same on
either: the account comes from the call's key (``server.identity.access``), a refusal is a
``server.errors.Refused`` the transport maps to its status, and an outcome that does not
come in time raises ``server.outcomes.OutcomeNotYet``. Only the transports know their wire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from server.commands import CancelAllWritten, CommandHandlers, CommandOutcome, PlaceOrderInput
from server.errors import Refused
from server.identity.access import acting_account, order_owner_filter
from server.observability import metrics
from server.order_state import OrderState
from server.outcomes import CancelAllOutcome, EngineOutcome, OutcomeNotYet, OutcomeWaiter

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class CommandAnswer:
    """A command's answer: the request as written, or the engine's outcome of it when the
    caller waited."""

    written: CommandOutcome
    outcome: EngineOutcome | None = None

    @property
    def order(self) -> OrderState:
        return self.written.order if self.outcome is None else self.outcome.order

    @property
    def position(self) -> str:
        """The log position token to read the answer back with (read-your-writes)."""
        position = self.written.position if self.outcome is None else self.outcome.position
        return position.to_token()

    @property
    def duplicate(self) -> bool:
        return self.written.duplicate

    @property
    def rejection_reason(self) -> str:
        return "" if self.outcome is None else self.outcome.rejection_reason or ""


async def _counted(command: str, call: Awaitable[_Result]) -> _Result:
    """Await a command handler's call, counted in flight and by result."""
    with metrics.track_command_in_flight(command):
        try:
            result = await call
        except Refused as refusal:
            metrics.record_command(command, refusal.status)
            raise
    metrics.record_command(command, "appended")
    return result


class OrderCommands:
    """Place, cancel, amend and cancel-all for the caller (the current principal)."""

    def __init__(
        self,
        handlers: CommandHandlers,
        outcomes: OutcomeWaiter | None = None,
        default_wait_s: float = 5.0,
    ) -> None:
        self._handlers = handlers
        self._outcomes = outcomes
        self.default_wait_s = default_wait_s

    def _waiter(self) -> OutcomeWaiter:
        if self._outcomes is None:
            raise OutcomeNotYet("this service does not wait for outcomes")
        return self._outcomes

    async def _answer(self, written: CommandOutcome, wait_s: float | None) -> CommandAnswer:
        """`written` alone, or with the engine's outcome when `wait_s` is not None (0 or
        more seconds; OutcomeNotYet when it does not come in time)."""
        if wait_s is None:
            return CommandAnswer(written)
        assert written.request is not None
        return CommandAnswer(written, await self._waiter().wait(written.request, wait_s))

    async def place(
        self,
        read_request: Callable[[], PlaceOrderInput],
        wait_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CommandAnswer:
        """Place the request `read_request` reads off the wire (its refusals count as the
        command's) for the caller's account (PERMISSION_DENIED for another's)."""
        with metrics.track_command_in_flight("place"):
            try:
                request = read_request()
                request = replace(request, user_id=acting_account(request.user_id))
                written = await self._handlers.place_order(request, metadata)
            except Refused as refusal:
                metrics.record_command("place", refusal.status)
                raise
        metrics.record_command("place", "duplicate" if written.duplicate else "appended")
        if not written.duplicate:
            metrics.record_order_placed(written.order.instrument)
        return await self._answer(written, wait_s)

    async def cancel(
        self,
        requested_user_id: str,
        order_id: str,
        wait_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CommandAnswer:
        """Cancel an order of the caller's (an admin key: anyone's; others' are NOT_FOUND)."""

        async def cancel() -> CommandOutcome:
            owner = order_owner_filter(requested_user_id)
            return await self._handlers.cancel_order(owner, order_id, metadata)

        return await self._answer(await _counted("cancel", cancel()), wait_s)

    async def amend(
        self,
        requested_user_id: str,
        order_id: str,
        price: str | None,
        quantity: str | None,
        wait_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CommandAnswer:
        async def amend() -> CommandOutcome:
            return await self._handlers.amend_order(
                acting_account(requested_user_id), order_id, price, quantity, metadata
            )

        return await self._answer(await _counted("amend", amend()), wait_s)

    async def cancel_all(
        self,
        requested_user_id: str,
        instrument: str | None,
        metadata: Mapping[str, str] | None = None,
    ) -> CancelAllWritten:
        """Write the caller's cancel-all request (optionally for one instrument)."""

        async def cancel_all() -> CancelAllWritten:
            return await self._handlers.cancel_all_orders(
                acting_account(requested_user_id), instrument or None, metadata
            )

        return await _counted("cancel_all", cancel_all())

    async def cancel_all_outcome(
        self, written: CancelAllWritten, wait_s: float
    ) -> CancelAllOutcome:
        """The engine's outcome of a cancel-all request: the orders it cancelled."""
        return await self._waiter().wait_cancel_all(written.position, written.event_id, wait_s)
