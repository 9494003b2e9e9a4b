"""Refusing a wait that a stuck consumer of the log would never end.

A consumer stopped at an event it cannot apply (``ConsumerFailures``) does not get past
that event until it is repaired: a wait for a position at or past it could only run out
its deadline. Such a wait is refused with UNAVAILABLE (retryable), naming the consumer,
the event and why: at once when the consumer is stuck already (`refuse_if_stuck_before`,
what read-your-writes does before waiting for `min_position`), or as soon as it gets stuck
while the wait runs (`unless_stuck_before`, what a command's `wait_for_outcome` does).
Both decide with the one check, `stuck_before`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from server.consumers.tasks import stop_task
from server.errors import Unavailable
from server.eventstore.port import LogPosition
from server.observability.consumer_failures import ConsumerFailures, StuckEvent

# The names consumers report under: the engine runner, and each projection builder
# (``projections.builder.consumer_of``).
ENGINE_CONSUMER = "engine"
PROJECTION_CONSUMER_PREFIX = "projection:"

_T = TypeVar("_T")


def stuck_before(
    failures: ConsumerFailures, consumers: str, position: LogPosition
) -> StuckEvent | None:
    """The event a consumer whose name starts with `consumers` is stuck at, when that is at
    or before `position` (or not a named event): it will not get past `position`."""
    for consumer, stuck in failures.stuck.items():
        if not consumer.startswith(consumers):
            continue
        if stuck.position is None or stuck.position <= position:
            return stuck
    return None


def _refusal(refusal: str, stuck: StuckEvent) -> Unavailable:
    return Unavailable(f"{refusal}: {stuck.describe()[:300]}")


def refuse_if_stuck_before(
    failures: ConsumerFailures | None, consumers: str, position: LogPosition, refusal: str
) -> None:
    """Raise Unavailable("`refusal`: <the stuck event>") when `stuck_before` names one."""
    if failures is None:
        return
    stuck = stuck_before(failures, consumers, position)
    if stuck is not None:
        raise _refusal(refusal, stuck)


async def unless_stuck_before(
    work: Awaitable[_T],
    failures: ConsumerFailures | None,
    consumers: str,
    position: LogPosition,
    refusal: str,
) -> _T:
    """`work`'s result, unless `stuck_before` names an event before it is done, now or once
    a consumer reports one: then `work` is stopped and Unavailable raised as
    `refuse_if_stuck_before` does."""
    if failures is None:
        return await work
    stuck_at: asyncio.Future[StuckEvent] = asyncio.get_running_loop().create_future()

    def on_change(_consumer: str, _event: StuckEvent | None) -> None:
        stuck = stuck_before(failures, consumers, position)
        if stuck is not None and not stuck_at.done():
            stuck_at.set_result(stuck)

    failures.add_listener(on_change)
    working = asyncio.ensure_future(work)
    try:
        on_change("", None)  # stuck already: refused at once (`work` never starts)
        if not stuck_at.done():
            either: set[asyncio.Future[Any]] = {working, stuck_at}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        failures.remove_listener(on_change)
        if not working.done():
            await stop_task(working)
    if working.done() and not working.cancelled():
        return working.result()  # done first (or as the consumer got stuck): still the answer
    raise _refusal(refusal, stuck_at.result())
