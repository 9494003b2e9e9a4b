"""Wake-ups for live subscriptions: a generation counter, bumped on LISTEN/NOTIFY.

Writers in any process `NOTIFY` (with the committed transaction id) after they commit, from
a connection of their own (`CommitNotifier`); one listening connection per store
(`NotificationListener`) bumps the counter and wakes every waiting subscriber, which then
re-reads the log. Writers in this process also bump it directly, saving the round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from server.consumers.tasks import stop_task
from server.eventstore.postgres.schema import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)


def _notify_sql(committed_tx: int) -> str:
    """The NOTIFY as a plain statement: asyncpg sends a query without parameters in one
    simple-protocol message, skipping the prepared statement's bind step, which cost
    ~40% more CPU here and in PostgreSQL (the payload is an int we format ourselves)."""
    return f"NOTIFY {NOTIFY_CHANNEL}, '{int(committed_tx)}'"


class ChangeSignal:
    """A counter of "the log may have grown" signals that subscribers can wait on.

    It also remembers the newest committed writing transaction it heard of (NOTIFY
    payloads carry it), so a reader whose horizon is not past it knows committed events are
    still hidden behind an older running transaction and re-reads soon.
    """

    def __init__(self) -> None:
        self.generation = 0
        self.latest_committed_tx = 0
        self._changed = asyncio.Event()

    def notify(self, committed_tx: int = 0) -> None:
        if committed_tx > self.latest_committed_tx:
            self.latest_committed_tx = committed_tx
        self.generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_past(self, seen_generation: int, timeout: float) -> None:
        """Return once the generation moved past `seen_generation`, or after `timeout`."""
        if self.generation != seen_generation:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class NotificationListener:
    """Holds one LISTEN connection (reconnecting when it drops) feeding a ChangeSignal."""

    def __init__(
        self,
        dsn: str,
        signal: ChangeSignal,
        own_backend_pids: set[int] | None = None,
        reconnect_delay: float = 0.5,
    ) -> None:
        self._dsn = dsn
        self._signal = signal
        # Commits from this process already bumped the signal directly: skip their echo.
        self._own_backend_pids = own_backend_pids if own_backend_pids is not None else set()
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening (idempotent); returns once the first LISTEN is in place."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="eventstore-listener")
        # Subscribers still poll on a timer, so a server that refuses LISTEN only slows
        # them down; don't wait forever for it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5.0)

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def _on_notification(self, _connection: Any, pid: int, _channel: str, payload: object) -> None:
        # asyncpg hands over the NOTIFY payload as a str; its stubs promise only an object.
        if pid not in self._own_backend_pids:
            digits = payload if isinstance(payload, str) else ""
            self._signal.notify(int(digits) if digits.isdigit() else 0)

    async def _run(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._on_notification)
                self._ready.set()
                # Anything may have been appended while we were not listening.
                self._signal.notify()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("eventstore_listen_failed", error=repr(error))
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
            await asyncio.sleep(self._reconnect_delay)


class CommitNotifier:
    """Sends the post-commit NOTIFY from a connection of its own.

    Flushers hand over the committed transaction id and go back to writing; this task sends
    one `pg_notify` for however many commits arrived meanwhile, so under load there is one
    notification per round trip, not one per commit, and none on the writers' path.
    """

    def __init__(self, dsn: str, own_backend_pids: set[int], retry_delay: float = 0.5) -> None:
        self._dsn = dsn
        self._own_backend_pids = own_backend_pids
        self._retry_delay = retry_delay
        self._pending_tx = 0
        self._has_pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def committed(self, tx: int) -> None:
        if tx > self._pending_tx:
            self._pending_tx = tx
        self._has_pending.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="eventstore-notifier")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                # A NOTIFY commits a transaction of its own; it need not wait for the WAL
                # flush (a notification lost in a crash only delays a poll).
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"synchronous_commit": "off"}
                )
                self._own_backend_pids.add(connection.get_server_pid())
                while True:
                    await self._has_pending.wait()
                    self._has_pending.clear()
                    await connection.execute(_notify_sql(self._pending_tx))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Subscribers elsewhere fall back on their poll until we are back.
                log.warning("eventstore_notify_failed", error=repr(error))
                self._has_pending.set()
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
            await asyncio.sleep(self._retry_delay)
