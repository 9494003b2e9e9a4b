"""Stopping a background asyncio task: one way, for every module that runs one.

Standard library only (``projections`` imports it too).
"""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended. Its cancellation is not an error and is
    swallowed; a failure of its own (an exception it ended with) is raised. Nothing to do
    for None.

    The caller's own cancellation, should it come while waiting, is not swallowed: that
    CancelledError is the caller's, not the task's (asyncio's `cancelling()` tells them
    apart)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        caller = asyncio.current_task()
        if caller is not None and caller.cancelling() > 0:
            raise
