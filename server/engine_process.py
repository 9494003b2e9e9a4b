"""The engine runner as a supervised child process (``ENGINE_PROCESS=1``).

The runner talks to nothing but the log, so it can run beside the gRPC front in a process
of its own and use another core (the GIL otherwise serialises matching with request
handling). The child is restarted if it dies, and it exits by itself when this process
goes away (it watches ``ENGINE_PARENT_PID``), so a killed parent never leaves a runner
behind. Exactly-once and fencing make a restart at any point safe. Its metrics are its
own: the child serves them on ``ENGINE_METRICS_PORT`` (scrape it beside ``METRICS_PORT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

import structlog

from server.consumers.tasks import stop_task
from server.settings import Settings

log = structlog.get_logger(__name__)

RESTART_DELAY_S = 1.0
STOP_WAIT_S = 10.0


class EngineProcess:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._child: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def _env(self) -> dict[str, str]:
        settings = self._settings
        environment = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "EVENT_STORE_URL": settings.resolved_event_store_url,
            "INSTRUMENTS_FILE": str(settings.instruments_file),
            "ENGINE_SHARD": settings.engine_shard,
            "ENGINE_BATCH_MAX": str(settings.engine_batch_max),
            "SNAPSHOT_EVERY": str(settings.snapshot_every),
            "ENGINE_CLOSED_ORDER_MEMORY": str(settings.closed_order_memory),
            "LOG_LEVEL": settings.log_level,
            "ENGINE_PARENT_PID": str(os.getpid()),
            # Metrics off in the service means off in its engine too.
            "METRICS_PORT": str(settings.engine_metrics_port if settings.metrics_port >= 0 else -1),
        }
        # Unset, the child picks the format from its stdout, which is this process's.
        environment.pop("LOG_JSON", None)
        if settings.log_json is not None:
            environment["LOG_JSON"] = "1" if settings.log_json else "0"
        return environment

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.engine_runner",
            env=self._env(),  # its logs go to this process's stdout/stderr
        )

    async def _supervise(self, child: asyncio.subprocess.Process) -> None:
        while True:
            code = await child.wait()
            log.error("engine_process_exited", returncode=code, restart_in_s=RESTART_DELAY_S)
            await asyncio.sleep(RESTART_DELAY_S)
            child = self._child = await self._spawn()

    @property
    def running(self) -> bool:
        """True while a child runner process is alive."""
        return self._child is not None and self._child.returncode is None

    async def start(self) -> None:
        """Spawn the child now, then keep it running."""
        if self._task is None:
            self._child = await self._spawn()
            self._task = asyncio.create_task(self._supervise(self._child), name="engine-process")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        child = self._child
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            try:
                await asyncio.wait_for(child.wait(), STOP_WAIT_S)
            except TimeoutError:
                child.kill()
                await child.wait()
