"""OrderCommandService: PlaceOrder, CancelOrder, AmendOrder and the StreamPlaceOrders entry.

With `wait_for_outcome`, a command's answer waits (within the call's deadline, or the
service's default wait without one) for the engine's outcome through
``server.outcomes.OutcomeWaiter``; running out of time is DEADLINE_EXCEEDED, and a wait that
a stuck engine runner or view builder would never end is UNAVAILABLE at once. Either way
the request stays written (once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
import structlog

from clients.generated.exchange.v1 import order_command_service_pb2 as pb
from clients.generated.exchange.v1 import order_command_service_pb2_grpc as pb_grpc
from clients.generated.exchange.v1 import types_pb2
from server.commands import CancelAllWritten, CommandHandlers, CommandOutcome
from server.consumers.tasks import stop_task
from server.errors import Refused
from server.identity.access import acting_account, order_owner_filter
from server.limits.answers import rate_limited_error
from server.limits.interceptor import charge_command
from server.limits.token_bucket import RateLimiter
from server.observability import metrics
from server.observability.tracing import inject_trace_context
from server.outcomes import EngineOutcome, OutcomeNotYet, OutcomeWaiter
from server.servicers.convert import order_message, place_input
from server.servicers.outages import outage_error
from server.servicers.status import command_error, internal_error

log = structlog.get_logger(__name__)

# Requests of one StreamPlaceOrders call handled concurrently (their appends share commits).
STREAM_CONCURRENCY = 512
# Time kept back from a call's deadline to answer DEADLINE_EXCEEDED ourselves.
DEADLINE_MARGIN_S = 0.005


def _place_response(
    outcome: CommandOutcome, answer: EngineOutcome | None = None
) -> pb.PlaceOrderResponse:
    if answer is not None:
        return pb.PlaceOrderResponse(
            order=order_message(answer.order),
            position=answer.position.to_token(),
            duplicate=outcome.duplicate,
        )
    return pb.PlaceOrderResponse(
        order=order_message(outcome.order),
        position=outcome.position.to_token(),
        duplicate=outcome.duplicate,
    )


def _command_answer(
    outcome: CommandOutcome, answer: EngineOutcome | None
) -> tuple[types_pb2.Order, str, str]:
    """(order, position, rejection reason) of a Cancel/AmendOrderResponse: the request as
    written, or the engine's outcome of it when the caller waited."""
    if answer is None:
        return order_message(outcome.order), outcome.position.to_token(), ""
    return (
        order_message(answer.order),
        answer.position.to_token(),
        answer.rejection_reason or "",
    )


_Result = TypeVar("_Result")


async def _counted(
    command: str, call: Awaitable[_Result], context: grpc.aio.ServicerContext[Any, Any]
) -> _Result:
    """Await a command handler's call, counted in flight and by result."""
    with metrics.track_command_in_flight(command):
        try:
            result = await call
        except Refused as refusal:
            metrics.record_command(command, refusal.status)
            raise  # the call ends with its status (servicers.outages)
    metrics.record_command(command, "appended")
    return result


class OrderCommandServicer(pb_grpc.OrderCommandServiceServicer):
    def __init__(
        self,
        handlers: CommandHandlers,
        outcomes: OutcomeWaiter | None = None,
        default_wait_s: float = 5.0,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._handlers = handlers
        # StreamPlaceOrders spends one token per order (the unary commands are charged by
        # server.limits.interceptor before they get here).
        self._rate_limiter = rate_limiter
        self._outcomes = outcomes
        self._default_wait_s = default_wait_s

    async def _outcome(
        self, outcome: CommandOutcome, context: grpc.aio.ServicerContext[Any, Any]
    ) -> EngineOutcome:
        """The engine's outcome of the request just written, within the call's deadline
        (the default wait without one); OutcomeNotYet when time runs out."""
        assert outcome.request is not None
        return await self._outcome_waiter().wait(outcome.request, self._wait_s(context))

    def _outcome_waiter(self) -> OutcomeWaiter:
        if self._outcomes is None:
            raise OutcomeNotYet("this service does not wait for outcomes")
        return self._outcomes

    def _wait_s(self, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        """How long a wait for an outcome may take: the call's deadline, less a margin to
        answer DEADLINE_EXCEEDED ourselves, or the default wait without a deadline."""
        remaining = context.time_remaining()
        if remaining is None:
            return self._default_wait_s
        return max(0.0, remaining - DEADLINE_MARGIN_S)

    async def _place(
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PlaceOrderResponse:
        with metrics.track_command_in_flight("place"):
            try:
                # The account comes from the key (PERMISSION_DENIED for another's).
                request.user_id = acting_account(request.user_id)
                outcome = await self._handlers.place_order(
                    place_input(request), inject_trace_context()
                )
            except Refused as refusal:
                metrics.record_command("place", refusal.status)
                raise
        metrics.record_command("place", "duplicate" if outcome.duplicate else "appended")
        if not outcome.duplicate:
            metrics.record_order_placed(outcome.order.instrument)
        if request.wait_for_outcome:
            return _place_response(outcome, await self._outcome(outcome, context))
        return _place_response(outcome)

    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PlaceOrderResponse:
        return await self._place(request, context)

    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CancelOrderResponse:
        async def cancel() -> CommandOutcome:
            # An admin key cancels any order; another key its own (others' are NOT_FOUND).
            owner = order_owner_filter(request.user_id)
            return await self._handlers.cancel_order(
                owner, request.order_id, inject_trace_context()
            )

        outcome = await _counted("cancel", cancel(), context)
        answer = await self._waited(request.wait_for_outcome, outcome, context)
        order, position, rejection_reason = _command_answer(outcome, answer)
        return pb.CancelOrderResponse(
            order=order, position=position, rejection_reason=rejection_reason
        )

    async def _waited(
        self, wait: bool, outcome: CommandOutcome, context: grpc.aio.ServicerContext[Any, Any]
    ) -> EngineOutcome | None:
        """The engine's outcome when the caller asked to wait (DEADLINE_EXCEEDED when it
        does not come in time, UNAVAILABLE when it cannot come), else None."""
        if not wait:
            return None
        return await self._outcome(outcome, context)

    async def CancelAllOrders(
        self, request: pb.CancelAllOrdersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CancelAllOrdersResponse:
        async def cancel_all() -> CancelAllWritten:
            return await self._handlers.cancel_all_orders(
                acting_account(request.user_id), request.instrument or None, inject_trace_context()
            )

        written = await _counted("cancel_all", cancel_all(), context)
        if not request.wait_for_outcome:
            return pb.CancelAllOrdersResponse(position=written.position.to_token())
        outcome = await self._outcome_waiter().wait_cancel_all(
            written.position, written.event_id, self._wait_s(context)
        )
        return pb.CancelAllOrdersResponse(
            position=outcome.position.to_token(),
            cancelled_orders=[order_message(order) for order in outcome.cancelled],
        )

    async def AmendOrder(
        self, request: pb.AmendOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AmendOrderResponse:
        async def amend() -> CommandOutcome:
            return await self._handlers.amend_order(
                acting_account(request.user_id),
                request.order_id,
                request.price or None,
                request.quantity or None,
                inject_trace_context(),
            )

        outcome = await _counted("amend", amend(), context)
        answer = await self._waited(request.wait_for_outcome, outcome, context)
        order, position, rejection_reason = _command_answer(outcome, answer)
        return pb.AmendOrderResponse(
            order=order, position=position, rejection_reason=rejection_reason
        )

    async def _answer(
        self, request: pb.StreamPlaceOrdersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StreamPlaceOrdersResponse:
        """Every request gets an answer: a refusal, or INTERNAL for a fault of ours (logged
        once here; a unary call's fault is answered by gRPC itself)."""
        if self._rate_limiter is not None:
            retry_after_s = charge_command(self._rate_limiter, context)
            if retry_after_s > 0:
                return pb.StreamPlaceOrdersResponse(
                    request_id=request.request_id, error=rate_limited_error(retry_after_s)
                )
        try:
            placed = await self._place(request.order, context)
        except Refused as refusal:
            error = command_error(refusal)
        except OutcomeNotYet as late:
            error = types_pb2.CommandError(
                code=grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message=str(late)
            )
        except Exception as failure:
            outage = outage_error(failure)  # a dependency down: UNAVAILABLE, logged once there
            if outage is None:
                log.exception("stream_place_order_failed", request_id=request.request_id)
                outage = internal_error()
            error = outage
        else:
            return pb.StreamPlaceOrdersResponse(request_id=request.request_id, placed=placed)
        return pb.StreamPlaceOrdersResponse(request_id=request.request_id, error=error)

    async def StreamPlaceOrders(
        self,
        request_iterator: AsyncIterator[pb.StreamPlaceOrdersRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamPlaceOrdersResponse]:
        """Answers as each order is written (not in request order: pair by request_id).

        Requests are handled concurrently so that their appends share group commits; the
        semaphore bounds the work in flight, which back-pressures a client sending faster.
        """
        answers: asyncio.Queue[pb.StreamPlaceOrdersResponse | None] = asyncio.Queue()
        slots = asyncio.Semaphore(STREAM_CONCURRENCY)
        pending: set[asyncio.Task[None]] = set()

        async def answer(request: pb.StreamPlaceOrdersRequest) -> None:
            try:
                await answers.put(await self._answer(request, context))
            finally:
                slots.release()

        async def read_requests() -> None:
            try:
                async for request in request_iterator:
                    await slots.acquire()
                    task = asyncio.create_task(answer(request))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                if pending:
                    await asyncio.gather(*list(pending), return_exceptions=True)
            finally:
                await answers.put(None)

        reader = asyncio.create_task(read_requests())
        try:
            while (response := await answers.get()) is not None:
                yield response
            await reader  # surface a failure of the request stream
        finally:
            for task in list(pending):
                task.cancel()
            # A failure of the reader was raised by `await reader` above.
            with contextlib.suppress(Exception):
                await stop_task(reader)
