"""The gRPC health statuses, from what the consumers of the log report.

Every service starts SERVING. While a consumer is stuck at an event it cannot apply
(`ConsumerFailures`), the services that read what it produces are NOT_SERVING:

- a projection builder (`projection:<name>`): `exchange.v1.OrderQueryService` and
  `exchange.v1.MarketDataService` (their answers would be stale);
- the engine runner (`engine`): `exchange.v1.OrderCommandService` (orders would be written
  but not matched);
- any of them: `""`, the server as a whole.

`exchange.v1.DiagnosticsService` stays SERVING. They go back to SERVING once the consumer
has resumed. The health protocol has no reason field: the reason is in the
`service_not_serving` log line (and `consumer_stuck`'s), and in the
`exchange_consumer_stuck_event{consumer, event_type, position, reason}` metric.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from grpc_health.v1 import health_pb2

from server.consumers.tasks import stop_task
from server.observability.consumer_failures import ConsumerFailures, StuckEvent
from server.stuck_consumers import ENGINE_CONSUMER, PROJECTION_CONSUMER_PREFIX

log = structlog.get_logger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OVERALL = ""  # the health name of the server as a whole


def statuses(
    services: Sequence[str],
    read_side: Sequence[str],
    command_side: Sequence[str],
    stuck: Mapping[str, StuckEvent],
) -> dict[str, Any]:
    """The status of each service name (and of `OVERALL`) for these stuck consumers."""
    read_side_stuck = any(name.startswith(PROJECTION_CONSUMER_PREFIX) for name in stuck)
    command_side_stuck = ENGINE_CONSUMER in stuck
    result: dict[str, Any] = {}
    for service in services:
        down = (service in read_side and read_side_stuck) or (
            service in command_side and command_side_stuck
        )
        result[service] = NOT_SERVING if down else SERVING
    result[OVERALL] = NOT_SERVING if stuck else SERVING
    return result


class Readiness:
    """Keeps a grpc.aio `HealthServicer` equal to `statuses(...)` of the current failures."""

    def __init__(
        self,
        health: Any,  # grpc_health.v1.health.aio.HealthServicer
        failures: ConsumerFailures,
        services: Sequence[str],
        read_side: Sequence[str],
        command_side: Sequence[str],
    ) -> None:
        self._health = health
        self._failures = failures
        self._services = tuple(services)
        self._read_side = tuple(read_side)
        self._command_side = tuple(command_side)
        self._changed = asyncio.Event()
        self._published: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        failures.add_listener(self._on_change)

    def _on_change(self, consumer: str, stuck: StuckEvent | None) -> None:
        self._changed.set()

    async def publish(self) -> None:
        """Set every status from the failures as they are now (and log what changed)."""
        stuck = self._failures.stuck
        wanted = statuses(self._services, self._read_side, self._command_side, stuck)
        reasons = [event.describe() for event in stuck.values()]
        for service, status in wanted.items():
            if self._published.get(service) == status:
                continue
            await self._health.set(service, status)
            self._published[service] = status
            if status == NOT_SERVING:
                log.error("service_not_serving", service=service or "(overall)", reasons=reasons)
            else:
                log.info("service_serving", service=service or "(overall)")

    def start(self) -> None:
        """Follow the failures from now on (one task, so updates never interleave)."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="readiness")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self.publish()
