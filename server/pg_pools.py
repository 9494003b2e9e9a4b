"""What the service's asyncpg pools share (the event store's and the views')."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of its own or one lent by a pool: both run the same queries and
# transactions, and code that only queries takes either.
PgConnection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset that leaves the session as it is. asyncpg still rolls back an open
    transaction and drops listeners before calling it; what its default reset adds (a
    `RESET ALL; UNLISTEN *; ...` round trip) undoes session state that no user of these
    pools sets (`SET LOCAL` only; LISTEN has a connection of its own), and it cost one
    round trip per pooled query: per catch-up page, per head check, per engine batch."""
    return None


_T = TypeVar("_T")


async def run_to_completion(work: Awaitable[_T]) -> _T:
    """Await a pooled query that runs to its end even if the caller is cancelled.

    For a query on a pool (it acquires and releases its connection itself), never one
    inside a caller's transaction. Cancelling a query in flight makes asyncpg ask the
    server to cancel it and wait for the answer before the connection may go back to the
    pool, and that wait has hung for good (stopping an engine runner in the middle of its
    append, about one stop in thirty under load; asyncpg issue 431 describes the same
    hang). Here the caller is let go at once and the query finishes in a task of its own,
    returning its connection the ordinary way.
    """
    task = asyncio.ensure_future(work)
    task.add_done_callback(_consume_outcome)
    return await asyncio.shield(task)


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    """Mark a detached query's error as seen: its caller may be gone."""
    if not task.cancelled():
        task.exception()
