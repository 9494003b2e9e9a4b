"""Read-your-writes: wait_for wakes on the builders' progress, or times out."""

from __future__ import annotations

import asyncio

from projections.progress import ProjectionProgress
from server.eventstore.port import LogPosition


def at(tx: int, seq: int) -> LogPosition:
    return LogPosition(tx, seq)


async def test_wait_for_returns_at_once_when_already_reached() -> None:
    progress = ProjectionProgress()
    progress.register("a", at(5, 5))
    assert await progress.wait_for(at(5, 5), timeout=0)
    assert await progress.wait_for(at(1, 1), timeout=0)


async def test_wait_for_wakes_when_every_builder_has_passed_the_position() -> None:
    progress = ProjectionProgress()
    progress.register("postgres")
    progress.register("redis")
    waiter = asyncio.create_task(progress.wait_for(at(10, 3), timeout=None))
    await asyncio.sleep(0)
    progress.advance("postgres", at(10, 3))
    await asyncio.sleep(0)
    assert not waiter.done()
    progress.advance("redis", at(11, 1))
    assert await waiter
    assert progress.position("redis") == at(11, 1)


async def test_wait_for_one_builder_only() -> None:
    progress = ProjectionProgress()
    progress.register("postgres")
    progress.register("redis")
    waiter = asyncio.create_task(progress.wait_for(at(2, 2), timeout=None, names=["postgres"]))
    await asyncio.sleep(0)
    progress.advance("postgres", at(2, 2))
    assert await waiter


async def test_wait_for_times_out_and_forgets_the_waiter() -> None:
    progress = ProjectionProgress()
    progress.register("a", at(1, 1))
    assert not await progress.wait_for(at(2, 1), timeout=0.01)
    assert progress._waiters == []


async def test_progress_never_moves_backwards() -> None:
    progress = ProjectionProgress()
    progress.advance("a", at(3, 3), events=2)
    progress.advance("a", at(2, 2), events=1)
    assert progress.position("a") == at(3, 3)
    assert progress.events_applied("a") == 3
