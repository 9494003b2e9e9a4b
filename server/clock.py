"""The service clock: appends ``ClockTicked`` to the ``clock`` stream on a fixed period.

Time reaches the engine only through the log, so a replay sees exactly the instants the
live engine saw and GTD expiry replays identically. Ticks carry wall-clock UTC; several
service processes may tick at once (harmless: the engine runner ignores a tick that does
not move its clock forward).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from server.consumers.tasks import stop_task
from server.eventstore.port import EventStore, ExpectedVersion, NewEvent
from server.log_contract.layout import CLOCK_STREAM
from server.log_contract.mapper import encode
from server.log_contract.records import ClockTicked
from server.outage_errors import unavailable_reason

log = structlog.get_logger(__name__)


def clock_tick_event(now: datetime) -> NewEvent:
    event_type, data, metadata = encode(ClockTicked(now=now))
    return NewEvent(type=event_type, data=data, metadata=metadata)


class Clock:
    """Appends one ClockTicked every ``period_s`` seconds until stopped."""

    def __init__(
        self,
        event_store: EventStore,
        period_s: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._event_store = event_store
        self._period_s = period_s
        self._now = now
        self._task: asyncio.Task[None] | None = None
        self._outage: str | None = None  # the dependency down since the last tick that worked

    async def tick(self) -> None:
        await self._event_store.append(
            CLOCK_STREAM, [clock_tick_event(self._now())], ExpectedVersion.ANY
        )

    async def tick_and_report(self) -> None:
        """One tick; a failure is retried next period (the engine only sees time later).
        An outage is logged once when it starts and once when ticks work again, never with
        a stack trace per tick; any other failure is logged with its trace."""
        try:
            await self.tick()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            reason = unavailable_reason(error)
            if reason is None:
                log.exception("clock_tick_failed")
            elif reason != self._outage:
                log.warning("clock_ticks_paused", reason=reason)
            self._outage = reason
            return
        if self._outage is not None:
            log.info("clock_ticks_resumed", after=self._outage)
            self._outage = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            await self.tick_and_report()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="clock")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
