"""The service clock: appends ``ClockTicked`` to the ``clock`` stream on a fixed period.

Time reaches the engine only through the log, so a replay sees exactly the instants the
live engine saw and GTD expiry replays identically. Ticks carry wall-clock UTC; several
service processes may tick at once (harmless: the engine runner ignores a tick that does
not move its clock forward).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from server.eventstore.port import EventStore, ExpectedVersion, NewEvent
from server.streams import CLOCK_STREAM, CLOCK_TICKED, format_time

log = structlog.get_logger(__name__)


def clock_tick_event(now: datetime) -> NewEvent:
    return NewEvent(type=CLOCK_TICKED, data={"now": format_time(now)})


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

    async def tick(self) -> None:
        await self._event_store.append(
            CLOCK_STREAM, [clock_tick_event(self._now())], ExpectedVersion.ANY
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed tick is retried next period; the engine only sees time later.
                log.exception("clock_tick_failed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
