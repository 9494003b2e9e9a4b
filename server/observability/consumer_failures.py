"""Which consumers of the log are stuck at an event they cannot apply, and telling everyone.

A consumer (the engine runner, a projection builder) that cannot apply an event stops at
it: its checkpoint stays before the event, it retries with back-off, and it goes on from
exactly there once it can. `ConsumerFailures` is where it reports that:

- `failed(consumer, event, error)` after each failed attempt: counts it
  (`exchange_consumer_failures_total`), and with an event marks the consumer stuck at it
  (`exchange_consumer_stuck` = 1, `exchange_consumer_stuck_event{event_type, position,
  reason}` = 1) and logs `consumer_stuck` with the position, type, stream, error and its
  trace, once per distinct failure (a retry failing the same way logs at debug level only);
- `passed(consumer, position)` after each committed batch: once past the stuck event, the
  consumer has resumed (`consumer_resumed` is logged, the gauges go back to 0);
- listeners (`add_listener`) hear of every change: the service turns them into gRPC
  health statuses, the projection runner into a rejoin of the shared subscription.

No I/O and no clock beyond the wall time of the report; one instance per process part
that owns consumers (the service shares one between its engine runner and projections).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from server.observability import metrics

log = structlog.get_logger(__name__)

# Longest error message kept in a report (the log line; metrics carry the class only).
_DETAIL_MAX = 500


@dataclass(frozen=True)
class StuckEvent:
    """The event a consumer is stopped at, and why."""

    consumer: str
    position: Any  # a LogPosition (ordered); None when no event could be named
    event_type: str
    stream: str
    reason: str  # the error's class name
    detail: str  # the error's message, cut to _DETAIL_MAX characters
    since: float  # Unix time of the first failure at this event

    @property
    def position_token(self) -> str:
        return "" if self.position is None else str(self.position)

    def describe(self) -> str:
        """One line for operators: where, what and why."""
        where = f"{self.event_type} at {self.position_token}" if self.position else "its log"
        return f"{self.consumer} cannot apply {where}: {self.reason}: {self.detail}"


Listener = Callable[[str, "StuckEvent | None"], None]


class ConsumerFailures:
    """The stuck consumers of this process, with their failure counts, metrics and logs."""

    def __init__(self) -> None:
        self._stuck: dict[str, StuckEvent] = {}
        self._failures: dict[str, int] = {}
        self._listeners: list[Listener] = []

    def declare(self, consumer: str) -> None:
        """Export `consumer`'s failure counter and stuck gauge at 0 from the start."""
        self._failures.setdefault(consumer, 0)
        metrics.declare_consumer(consumer)

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(consumer, stuck_event_or_None)` on every change (None: resumed)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener` (one that was added)."""
        self._listeners.remove(listener)

    @property
    def stuck(self) -> Mapping[str, StuckEvent]:
        return dict(self._stuck)

    def stuck_at(self, consumer: str) -> StuckEvent | None:
        return self._stuck.get(consumer)

    def failures(self, consumer: str) -> int:
        """Failed attempts of `consumer` counted by this instance."""
        return self._failures.get(consumer, 0)

    def failed(self, consumer: str, event: Any | None, error: BaseException) -> StuckEvent | None:
        """Report one failed attempt. With `event` (a `RecordedEvent`), `consumer` is stuck
        at it until `passed` says otherwise; returns the stuck event (None without one)."""
        self._failures[consumer] = self._failures.get(consumer, 0) + 1
        metrics.record_consumer_failure(consumer)
        reason = type(error).__name__
        detail = str(error)[:_DETAIL_MAX]
        if event is None:
            log.warning(
                "consumer_failed",
                consumer=consumer,
                reason=reason,
                error=detail,
                failures=self._failures[consumer],
            )
            return None
        previous = self._stuck.get(consumer)
        if (
            previous is not None
            and previous.position == event.position
            and previous.event_type == event.type
            and previous.reason == reason
        ):
            log.debug(
                "consumer_still_stuck",
                consumer=consumer,
                position=previous.position_token,
                event_type=previous.event_type,
                failures=self._failures[consumer],
            )
            return previous
        stuck = StuckEvent(
            consumer=consumer,
            position=event.position,
            event_type=event.type,
            stream=event.stream,
            reason=reason,
            detail=detail,
            since=time.time() if previous is None else previous.since,
        )
        self._stuck[consumer] = stuck
        metrics.set_consumer_stuck(consumer, stuck.event_type, stuck.position_token, reason)
        log.error(
            "consumer_stuck",
            consumer=consumer,
            position=stuck.position_token,
            event_type=stuck.event_type,
            stream=stuck.stream,
            event_id=str(getattr(event, "event_id", "")),
            reason=reason,
            error=detail,
            failures=self._failures[consumer],
            exc_info=error,  # the trace once; retries failing the same way log no trace
        )
        self._notify(consumer, stuck)
        return stuck

    def passed(self, consumer: str, position: Any) -> None:
        """`consumer` committed everything up to `position`: resumed if that is at or past
        the event it was stuck at."""
        stuck = self._stuck.get(consumer)
        if stuck is None or (stuck.position is not None and position < stuck.position):
            return
        del self._stuck[consumer]
        metrics.clear_consumer_stuck(consumer)
        log.info(
            "consumer_resumed",
            consumer=consumer,
            position=stuck.position_token,
            event_type=stuck.event_type,
            stuck_for_s=round(time.time() - stuck.since, 3),
            failures=self._failures.get(consumer, 0),
        )
        self._notify(consumer, None)

    def _notify(self, consumer: str, stuck: StuckEvent | None) -> None:
        for listener in list(self._listeners):
            listener(consumer, stuck)
