"""The clock during an outage: one line when ticks pause and one when they resume, no
stack trace per tick."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog.testing import capture_logs

from server.clock import Clock
from server.eventstore import open_event_store
from server.log_contract.layout import CLOCK_STREAM


async def test_an_outage_pauses_ticks_with_one_line_and_resuming_says_so() -> None:
    down = await open_event_store("memory://")
    await down.close()  # every call now raises EventStoreUnavailable
    up = await open_event_store("memory://")
    clock = Clock(down, 1.0, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    with capture_logs() as logs:
        for _ in range(3):
            await clock.tick_and_report()
        clock._event_store = up  # the store is back
        await clock.tick_and_report()
        await clock.tick_and_report()
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("clock_ticks_paused", "warning"),
        ("clock_ticks_resumed", "info"),
    ]
    assert logs[0]["reason"] == "the event store is unavailable"
    assert "exc_info" not in logs[0]
    assert len(await up.read_stream(CLOCK_STREAM)) == 2
    await up.close()
