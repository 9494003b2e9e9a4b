"""`stop_task`: cancel a background task and wait for its end, its cancellation swallowed."""

from __future__ import annotations

import asyncio

import pytest

from server.consumers.tasks import stop_task


async def test_a_running_task_is_cancelled_and_awaited_without_error() -> None:
    started = asyncio.Event()
    cleaned_up: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append("done")

    task = asyncio.create_task(forever())
    await started.wait()

    await stop_task(task)

    assert task.cancelled()
    assert cleaned_up == ["done"]


async def test_none_is_nothing_to_stop() -> None:
    await stop_task(None)


async def test_a_failure_of_the_task_itself_is_raised() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails())
    await asyncio.wait({task})

    with pytest.raises(ValueError, match="broken"):
        await stop_task(task)


async def test_a_task_already_finished_is_left_as_it_is() -> None:
    async def answers() -> int:
        return 42

    task = asyncio.create_task(answers())
    await asyncio.wait({task})

    await stop_task(task)

    assert task.result() == 42


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    started = asyncio.Event()
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            await asyncio.Event().wait()  # takes its time (until cancelled again)
            raise

    background = asyncio.create_task(slow_to_stop())
    await started.wait()
    stopper = asyncio.create_task(stop_task(background))
    await stopping.wait()

    stopper.cancel()  # the caller of stop_task is cancelled while it waits

    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert stopper.cancelled()
    background.cancel()
    await asyncio.wait({background})
