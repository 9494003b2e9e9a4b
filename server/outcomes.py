"""Waiting for the engine's answer to one request, and for the views to hold it.

A command handler answers once its request is written; a caller who asked to wait
(``wait_for_outcome``) gets the engine's decision instead. Nothing here polls:

1. The engine runner writes its results for a request to the order's own stream, each
   carrying the request's event id as ``causation_id``. A subscription to ``order-<id>``
   from just after the request wakes on each new event of that stream; the first one the
   request caused is the engine's answer.
2. The runner writes all results of an input batch (with its progress event) in one
   atomic append, one transaction, and the view builders apply a transaction whole
   (``projections.builder``): once the views have committed the answer's position
   (``ProjectionProgress.wait_for``) they hold every result of that batch, trades and
   the other side's fills included. That position is the caller's token for "after the
   engine's answer".
3. The order is folded from its stream up to the engine's last result for the request,
   with the views' own fold (``server.order_state.fold_order``): the order as the engine
   left it, whatever happened to it later.

The caller bounds it all with one timeout; running out raises ``OutcomeNotYet``. The
request is in the log either way: waiting never writes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from server.eventstore.port import EventStore, LogPosition, RecordedEvent
from server.log_contract.layout import CAUSATION_ID, order_stream
from server.log_contract.mapper import decode
from server.log_contract.records import AmendRejected, CancelRejected
from server.order_state import OrderState, fold_order


class ViewProgress(Protocol):
    """How far the views have got (``projections.progress.ProjectionProgress``)."""

    async def wait_for(self, position: Any, timeout: float | None) -> bool: ...


class OutcomeNotYet(Exception):
    """The time given ran out before the engine answered the request or the views held
    its result. The request stays written; its outcome comes later."""


@dataclass(frozen=True, slots=True)
class RequestRef:
    """A written request: its order, its stream version and its event id."""

    order_id: str
    version: int
    event_id: UUID


@dataclass(frozen=True, slots=True)
class EngineOutcome:
    """The order as the engine left it after answering a request, and where that answer
    ends in the log (a `min_position` that shows it)."""

    order: OrderState
    position: LogPosition
    # The reason of a CancelRejected / AmendRejected answer; None when carried out.
    rejection_reason: str | None = None


class OutcomeWaiter:
    def __init__(self, event_store: EventStore, views: ViewProgress) -> None:
        self._event_store = event_store
        self._views = views

    async def wait(self, request: RequestRef, timeout: float) -> EngineOutcome:
        """The engine's outcome of `request` once the views hold it; OutcomeNotYet after
        `timeout` seconds."""
        stream = order_stream(request.order_id)
        try:
            async with asyncio.timeout(timeout):
                answer = await self._engine_answer(request)
                await self._views.wait_for(answer.position, None)
                events = await self._event_store.read_stream(stream)
        except TimeoutError:
            late = True  # raised below: a TimeoutError in its chain would read as an outage
        else:
            late = False
        if late:
            raise OutcomeNotYet(
                f"the engine's answer to the request at version {request.version} of order "
                f"{request.order_id} is not in the views yet"
            )
        return _outcome(request, events[: answer.version], events[answer.version :])

    async def _engine_answer(self, request: RequestRef) -> RecordedEvent:
        """The first event of the order's stream that the request caused."""
        cause = str(request.event_id)
        subscription = self._event_store.subscribe_stream(
            order_stream(request.order_id), from_version=request.version + 1
        )
        async with _closing(subscription):
            async for event in subscription:
                if event.metadata.get(CAUSATION_ID) == cause:
                    return event
        raise OutcomeNotYet(f"the log of order {request.order_id} ended")  # store closed


def _outcome(
    request: RequestRef, before: list[RecordedEvent], from_answer: list[RecordedEvent]
) -> EngineOutcome:
    """The order up to the engine's last result for the request. Those results follow
    the answer in the stream, written in the same append, hence visible with it."""
    cause = str(request.event_id)
    answered: list[RecordedEvent] = []
    rejection_reason = None
    for event in from_answer:
        if event.metadata.get(CAUSATION_ID) != cause:
            break
        answered.append(event)
        record = decode(event)
        if isinstance(record, CancelRejected | AmendRejected):
            rejection_reason = record.reason
    order = fold_order(request.order_id, before + answered)
    assert order is not None  # the stream starts with its place request
    return EngineOutcome(
        order=order, position=answered[-1].position, rejection_reason=rejection_reason
    )


@contextlib.asynccontextmanager
async def _closing(subscription: AsyncIterator[RecordedEvent]) -> AsyncIterator[None]:
    """Close a subscription's generator on leaving (a return inside `async for` would
    leave it to the garbage collector)."""
    try:
        yield
    finally:
        close = getattr(subscription, "aclose", None)
        if close is not None:
            await close()
