"""Fixtures for fast unit tests of what sits on the event-store port: the in-memory log
(`memory://`), the configured instruments and a clock that moves one second per reading.
Nothing here starts a server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from domain.instruments import Instrument
from server.commands import CommandHandlers
from server.engine_runner import EngineRunner
from server.eventstore import EventStore, LogPosition, open_event_store
from server.instrument_config import load_instruments
from server.settings import DEFAULT_INSTRUMENTS_FILE

INSTRUMENTS: Mapping[str, Instrument] = load_instruments(DEFAULT_INSTRUMENTS_FILE)
START = datetime(2026, 1, 1, tzinfo=UTC)
# A guard against a hang, never an assertion about speed.
HANG_GUARD_S = 30


@pytest.fixture
async def store() -> AsyncIterator[EventStore]:
    event_store = await open_event_store("memory://")
    yield event_store
    await event_store.close()


@pytest.fixture
def clock() -> Callable[[], datetime]:
    """START, then one second later at every reading."""
    seconds = itertools.count()
    return lambda: START + timedelta(seconds=next(seconds))


@pytest.fixture
def instruments() -> Mapping[str, Instrument]:
    return INSTRUMENTS


@pytest.fixture
def handlers(store: EventStore, clock: Callable[[], datetime]) -> CommandHandlers:
    return CommandHandlers(store, INSTRUMENTS, now=clock)


RunEngine = Callable[..., Awaitable[EngineRunner]]


@pytest.fixture
def run_engine(store: EventStore) -> RunEngine:
    """`await run_engine(position, snapshot_every=...)`: an engine runner on the store, run
    until it has written its results for the input at `position`, then stopped."""

    async def run_until(position: LogPosition, snapshot_every: int = 10_000) -> EngineRunner:
        runner = EngineRunner(store, INSTRUMENTS, snapshot_every=snapshot_every, retry_delay_s=0.01)
        runner.start()
        try:
            await asyncio.wait_for(runner.wait_processed(position), HANG_GUARD_S)
        finally:
            await runner.stop()
        return runner

    return run_until
