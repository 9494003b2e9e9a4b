"""Refusing a wait that a stuck consumer of the log would never end.

A consumer stopped at an event it cannot apply (``ConsumerFailures``) does not get past
that event until it is repaired: a wait for a position at or past it could only run out
its deadline. `refuse_if_stuck_before` refuses such a wait at once with UNAVAILABLE
(retryable), naming the consumer, the event and why. Every wait on a consumer uses it:
read-your-writes (`min_position` on queries) and a command's `wait_for_outcome`.
"""

from __future__ import annotations

from server.errors import Unavailable
from server.eventstore.port import LogPosition
from server.observability.consumer_failures import ConsumerFailures

# The names consumers report under: the engine runner, and each projection builder
# (``projections.builder.consumer_of``).
ENGINE_CONSUMER = "engine"
PROJECTION_CONSUMER_PREFIX = "projection:"


def refuse_if_stuck_before(
    failures: ConsumerFailures | None, consumers: str, position: LogPosition, refusal: str
) -> None:
    """Raise Unavailable("`refusal`: <the stuck event>") when a consumer whose name starts with
    `consumers` is stuck at or before `position` (or at an event it could not name)."""
    if failures is None:
        return
    for consumer, stuck in failures.stuck.items():
        if not consumer.startswith(consumers):
            continue
        if stuck.position is None or stuck.position <= position:
            raise Unavailable(f"{refusal}: {stuck.describe()[:300]}")
