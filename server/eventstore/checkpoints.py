"""Subscriber checkpoints in PostgreSQL (`es_checkpoints`), saved in the caller's transaction.

A projection that keeps its view in PostgreSQL writes its rows and its new checkpoint in
one transaction, so after a crash it resumes exactly where its view stopped:

    async with pool.acquire() as connection, connection.transaction():
        await write_view_rows(connection, events)
        await checkpoints.save(connection, "orders-view", events[-1].position)

Positions are stored as `LogPosition.to_token()` text, so the same table serves
subscribers of either adapter.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from server.eventstore.port import LogPosition
from server.pg_pools import PgConnection, run_to_completion

_SAVE_SQL = """
INSERT INTO es_checkpoints (name, position, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
"""
_LOAD_SQL = "SELECT position FROM es_checkpoints WHERE name = $1"
_DELETE_SQL = "DELETE FROM es_checkpoints WHERE name = $1"


class PostgresCheckpointStore:
    """Named positions in `es_checkpoints` (created by the event store's migrations)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, **pool_options: Any) -> PostgresCheckpointStore:
        """A checkpoint store with a pool of its own; migrates the schema if needed."""
        from server.eventstore.postgres.schema import migrate  # avoids an import cycle

        pool = await asyncpg.create_pool(dsn, **pool_options)
        async with pool.acquire() as connection:
            await migrate(connection)
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def load(self, name: str) -> LogPosition | None:
        token = await run_to_completion(self._pool.fetchval(_LOAD_SQL, name))
        return None if token is None else LogPosition.parse(token)

    async def save(
        self,
        connection_or_tx: PgConnection | asyncpg.Pool | Any | None,
        name: str,
        position: LogPosition,
    ) -> None:
        """Upsert `name`'s position on the given connection (inside its open transaction,
        if any); an asyncpg transaction object or None (the store's own pool) also do."""
        executor = _executor(connection_or_tx, self._pool)
        await executor.execute(_SAVE_SQL, name, position.to_token())

    async def delete(self, name: str, connection: PgConnection | None = None) -> None:
        await _executor(connection, self._pool).execute(_DELETE_SQL, name)

    async def close(self) -> None:
        await self._pool.close()


def _executor(connection_or_tx: Any, pool: asyncpg.Pool) -> Any:
    if connection_or_tx is None:
        return pool
    if hasattr(connection_or_tx, "execute"):
        return connection_or_tx
    # An asyncpg Transaction runs on the connection that started it.
    connection = getattr(connection_or_tx, "_connection", None)
    if connection is None:
        raise TypeError(f"cannot save a checkpoint through {connection_or_tx!r}")
    return connection
