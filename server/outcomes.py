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

A user's cancel-all has no stream of results of its own (the engine cancels orders in their
streams, possibly none): its answer is the engine's progress event (``EngineBatchProcessed``)
whose last input is at or after the request, found through a subscription; the views are
waited for as above; the orders it cancelled are the ``OrderCancelled`` events of that
progress event's transaction (one atomic append: positions sharing its ``tx``) that the
request caused.

A transfer is answered like an order: the engine's first result on ``transfer-<id>``
caused by the request (``wait_transfer``). A venue control, which may cause no result (a
status the instrument already has), like a cancel-all: the engine's progress event that
covers the request, then the results of that transaction the request caused
(``wait_caused``).

The caller bounds it all with one timeout; running out raises ``OutcomeNotYet``. A wait that
could never end is refused at once instead (``server.errors.Unavailable``): the engine
runner stuck at or before the request, or a view builder stuck at or before the engine's
answer (``server.stuck_consumers``). The request is in the log either way: waiting never
writes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

from server.eventstore.port import EventFilter, EventStore, LogPosition, RecordedEvent
from server.log_contract.layout import CAUSATION_ID, ENGINE_BATCH_PROCESSED, order_stream
from server.log_contract.mapper import decode
from server.log_contract.records import (
    AmendRejected,
    CancelRejected,
    EngineBatchProcessed,
    EngineResult,
    OrderCancelled,
)
from server.observability.consumer_failures import ConsumerFailures
from server.order_state import OrderState, fold_order
from server.stuck_consumers import (
    ENGINE_CONSUMER,
    PROJECTION_CONSUMER_PREFIX,
    unless_stuck_before,
)

_T = TypeVar("_T")


class ViewProgress(Protocol):
    """How far the views have got (``projections.progress.ProjectionProgress``)."""

    async def wait_for(self, position: Any, timeout: float | None) -> bool: ...


class OutcomeNotYet(Exception):
    """The time given ran out before the engine answered the request or the views held
    its result. The request stays written; its outcome comes later."""


@dataclass(frozen=True, slots=True)
class RequestRef:
    """A written request: its order, its stream version, its event id and its position."""

    order_id: str
    version: int
    event_id: UUID
    position: LogPosition


@dataclass(frozen=True, slots=True)
class EngineOutcome:
    """The order as the engine left it after answering a request, and where that answer
    ends in the log (a `min_position` that shows it)."""

    order: OrderState
    position: LogPosition
    # The reason of a CancelRejected / AmendRejected answer; None when carried out.
    rejection_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAllOutcome:
    """The orders the engine cancelled for a cancel-all request, as it left them (oldest
    first), and where its answer ends in the log."""

    cancelled: list[OrderState]
    position: LogPosition


@dataclass(frozen=True, slots=True)
class CausedOutcome:
    """The engine's results caused by one request (in log order), and where its answer
    ends in the log."""

    results: list[EngineResult]
    position: LogPosition


class OutcomeWaiter:
    def __init__(
        self,
        event_store: EventStore,
        views: ViewProgress,
        failures: ConsumerFailures | None = None,
    ) -> None:
        self._event_store = event_store
        self._views = views
        self._failures = failures

    async def _unless_engine_stuck_before(self, position: LogPosition, work: Awaitable[_T]) -> _T:
        return await unless_stuck_before(
            work, self._failures, ENGINE_CONSUMER, position, "the engine is stopped"
        )

    async def _views_reach(self, position: LogPosition) -> None:
        """Wait until the views hold `position` (Unavailable if a builder is stuck before)."""
        await unless_stuck_before(
            self._views.wait_for(position, None),
            self._failures,
            PROJECTION_CONSUMER_PREFIX,
            position,
            "the views are stopped",
        )

    async def wait(self, request: RequestRef, timeout: float) -> EngineOutcome:
        """The engine's outcome of `request` once the views hold it; OutcomeNotYet after
        `timeout` seconds; Unavailable at once when a consumer it waits for is stuck."""

        async def outcome() -> EngineOutcome:
            answer = await self._unless_engine_stuck_before(
                request.position, self._engine_answer(request)
            )
            await self._views_reach(answer.position)
            events = await self._event_store.read_stream(order_stream(request.order_id))
            return _outcome(request, events[: answer.version], events[answer.version :])

        return await _in_time(
            outcome(),
            timeout,
            f"the engine's answer to the request at version {request.version} of order "
            f"{request.order_id} is not in the views yet",
        )

    async def wait_cancel_all(
        self, position: LogPosition, event_id: UUID, timeout: float
    ) -> CancelAllOutcome:
        """The engine's outcome of the cancel-all request at `position` once the views hold
        it; OutcomeNotYet after `timeout` seconds; Unavailable at once when a consumer it
        waits for is stuck."""

        async def outcome() -> CancelAllOutcome:
            progress = await self._unless_engine_stuck_before(
                position, self._progress_past(position)
            )
            await self._views_reach(progress)
            return await self._cancelled_in(progress, str(event_id))

        return await _in_time(
            outcome(),
            timeout,
            f"the engine's answer to the cancel-all at {position} is not in the views yet",
        )

    async def wait_caused(
        self, position: LogPosition, event_id: UUID, timeout: float
    ) -> CausedOutcome:
        """The engine's results for the request at `position` (a transfer, a venue
        control) once the views hold them; OutcomeNotYet after `timeout` seconds;
        Unavailable at once when a consumer it waits for is stuck."""

        async def outcome() -> CausedOutcome:
            progress = await self._unless_engine_stuck_before(
                position, self._progress_past(position)
            )
            await self._views_reach(progress)
            caused, end = await self._caused_in(progress, str(event_id))
            results = [record for record in map(decode, caused)]
            return CausedOutcome(
                [record for record in results if isinstance(record, EngineResult)], end
            )

        return await _in_time(
            outcome(),
            timeout,
            f"the engine's answer to the request at {position} is not in the views yet",
        )

    async def wait_transfer(
        self, stream: str, position: LogPosition, event_id: UUID, timeout: float
    ) -> CausedOutcome:
        """The engine's answer to the transfer request (first event of `stream`, its
        transfer stream) at `position`, once the views hold it."""

        async def outcome() -> CausedOutcome:
            answer = await self._unless_engine_stuck_before(
                position, self._first_caused(stream, 1, str(event_id))
            )
            await self._views_reach(answer.position)
            record = decode(answer)
            assert isinstance(record, EngineResult)
            return CausedOutcome([record], answer.position)

        return await _in_time(
            outcome(),
            timeout,
            f"the engine's answer to the transfer at {position} is not in the views yet",
        )

    async def _first_caused(self, stream: str, from_version: int, cause: str) -> RecordedEvent:
        """The first event of `stream` from `from_version` that `cause` caused."""
        subscription = self._event_store.subscribe_stream(stream, from_version=from_version)
        async with _closing(subscription):
            async for event in subscription:
                if event.metadata.get(CAUSATION_ID) == cause:
                    return event
        raise OutcomeNotYet(f"the log of {stream} ended")  # store closed

    async def _progress_past(self, position: LogPosition) -> LogPosition:
        """The position of the engine's first progress event that covers `position`."""
        subscription = self._event_store.subscribe_all(
            after=position, filter=EventFilter(event_types=(ENGINE_BATCH_PROCESSED,))
        )
        async with _closing(subscription):
            async for event in subscription:
                record = decode(event)
                assert isinstance(record, EngineBatchProcessed)
                if LogPosition.parse(record.last_input) >= position:
                    return event.position
        raise OutcomeNotYet("the log ended")  # store closed

    async def _caused_in(
        self, progress: LogPosition, cause: str
    ) -> tuple[list[RecordedEvent], LogPosition]:
        """The events `cause` caused in the transaction of `progress`, and its last
        position."""
        cursor = LogPosition(progress.tx, 0)  # before every event of that transaction
        end = progress
        caused: list[RecordedEvent] = []
        while True:
            page = await self._event_store.read_all(after=cursor, limit=1000)
            in_transaction = [event for event in page if event.position.tx == progress.tx]
            for event in in_transaction:
                end = max(end, event.position)
                if event.metadata.get(CAUSATION_ID) == cause:
                    caused.append(event)
            if len(in_transaction) < len(page) or not page:
                break
            cursor = page[-1].position
        return caused, end

    async def _cancelled_in(self, progress: LogPosition, cause: str) -> CancelAllOutcome:
        """The orders cancelled by `cause` in the transaction of `progress`."""
        caused, end = await self._caused_in(progress, cause)
        order_ids: list[str] = []
        for event in caused:
            record = decode(event)
            if isinstance(record, OrderCancelled):
                order_ids.append(record.order_id)
        cancelled: list[OrderState] = []
        for order_id in order_ids:
            events = await self._event_store.read_stream(order_stream(order_id))
            order = fold_order(order_id, [event for event in events if event.position <= end])
            assert order is not None  # the engine cancels only orders it was asked to place
            cancelled.append(order)
        # The log holds an append's streams in its own order: oldest order first, as the
        # engine cancels them.
        cancelled.sort(key=lambda order: order.placed_position or end)
        return CancelAllOutcome(cancelled=cancelled, position=end)

    async def _engine_answer(self, request: RequestRef) -> RecordedEvent:
        """The first event of the order's stream that the request caused."""
        return await self._first_caused(
            order_stream(request.order_id), request.version + 1, str(request.event_id)
        )


async def _in_time(work: Awaitable[_T], timeout: float, late: str) -> _T:
    """`work`'s result, or OutcomeNotYet(`late`) after `timeout` seconds. Raised outside the
    TimeoutError's handler: a TimeoutError in its chain would read as an outage."""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        pass
    raise OutcomeNotYet(late)


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
