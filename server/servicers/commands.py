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
from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog

from clients.generated.exchange.v1 import order_command_service_pb2 as pb
from clients.generated.exchange.v1 import order_command_service_pb2_grpc as pb_grpc
from clients.generated.exchange.v1 import types_pb2
from server.consumers.tasks import stop_task
from server.errors import Refused
from server.limits.answers import rate_limited_error
from server.limits.interceptor import charge_command
from server.limits.token_bucket import RateLimiter
from server.observability.tracing import inject_trace_context
from server.order_commands import CommandAnswer, OrderCommands
from server.outcomes import OutcomeNotYet
from server.servicers.convert import order_message, place_input
from server.servicers.outages import outage_error
from server.servicers.status import command_error, internal_error

log = structlog.get_logger(__name__)

# Requests of one StreamPlaceOrders call handled concurrently (their appends share commits).
STREAM_CONCURRENCY = 512
# Time kept back from a call's deadline to answer DEADLINE_EXCEEDED ourselves.
DEADLINE_MARGIN_S = 0.005


def _place_response(answer: CommandAnswer) -> pb.PlaceOrderResponse:
    return pb.PlaceOrderResponse(
        order=order_message(answer.order), position=answer.position, duplicate=answer.duplicate
    )


class OrderCommandServicer(pb_grpc.OrderCommandServiceServicer):
    def __init__(
        self,
        commands: OrderCommands,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._commands = commands
        # StreamPlaceOrders spends one token per order (the unary commands are charged by
        # server.limits.interceptor before they get here).
        self._rate_limiter = rate_limiter

    def _wait_s(self, wait: bool, context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
        """How long a wait for an outcome may take (None: the caller does not wait): the
        call's deadline, less a margin to answer DEADLINE_EXCEEDED ourselves, or the
        default wait without a deadline."""
        if not wait:
            return None
        remaining = context.time_remaining()
        if remaining is None:
            return self._commands.default_wait_s
        return max(0.0, remaining - DEADLINE_MARGIN_S)

    async def _place(
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PlaceOrderResponse:
        answer = await self._commands.place(
            lambda: place_input(request),
            self._wait_s(request.wait_for_outcome, context),
            inject_trace_context(),
        )
        return _place_response(answer)

    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PlaceOrderResponse:
        return await self._place(request, context)

    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CancelOrderResponse:
        answer = await self._commands.cancel(
            request.user_id,
            request.order_id,
            self._wait_s(request.wait_for_outcome, context),
            inject_trace_context(),
        )
        return pb.CancelOrderResponse(
            order=order_message(answer.order),
            position=answer.position,
            rejection_reason=answer.rejection_reason,
        )

    async def CancelAllOrders(
        self, request: pb.CancelAllOrdersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CancelAllOrdersResponse:
        written = await self._commands.cancel_all(
            request.user_id, request.instrument, inject_trace_context()
        )
        wait_s = self._wait_s(request.wait_for_outcome, context)
        if wait_s is None:
            return pb.CancelAllOrdersResponse(position=written.position.to_token())
        outcome = await self._commands.cancel_all_outcome(written, wait_s)
        return pb.CancelAllOrdersResponse(
            position=outcome.position.to_token(),
            cancelled_orders=[order_message(order) for order in outcome.cancelled],
        )

    async def AmendOrder(
        self, request: pb.AmendOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AmendOrderResponse:
        answer = await self._commands.amend(
            request.user_id,
            request.order_id,
            request.price or None,
            request.quantity or None,
            self._wait_s(request.wait_for_outcome, context),
            inject_trace_context(),
        )
        return pb.AmendOrderResponse(
            order=order_message(answer.order),
            position=answer.position,
            rejection_reason=answer.rejection_reason,
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
