"""`PostgresEventStore`: the event store port on PostgreSQL through an asyncpg pool.

Writes: single-stream appends go through group commit (postgres/group_commit.py); atomic
multi-stream appends are one append call of their own (postgres/append.py). Each commit is
followed by a NOTIFY, sent from a connection of its own outside the writing transaction (a
NOTIFY inside it would serialise writers on commit).

Reads in global order only see rows below the transaction horizon (`_HORIZON_SQL`: the
oldest transaction still in flight, leaving out those running in other databases): every
transaction of this database older than that has finished, and any row committed later
gets a `tx_id` at or above it, so ordering and checkpointing on `(tx_id, position)` never
skips an event whose transaction committed late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import msgspec

from server.eventstore.port import (
    ANY,
    AppendResult,
    EventFilter,
    EventStore,
    EventStoreUnavailable,
    Expectation,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StreamAppend,
)
from server.eventstore.postgres.append import AppendRequest, encode_request
from server.eventstore.postgres.group_commit import (
    DEFAULT_FLUSHERS,
    GroupCommitWriter,
    call_append_retrying,
)
from server.eventstore.postgres.notify import ChangeSignal, CommitNotifier, NotificationListener
from server.eventstore.postgres.schema import migrate
from server.pg_pools import PgConnection, keep_session, run_to_completion

_COLUMNS = "position, tx_id, event_id, stream, version, type, data, metadata, recorded_at"

_READ_STREAM_SQL = f"""
SELECT {_COLUMNS} FROM es_events
 WHERE stream = $1 AND version >= $2
 ORDER BY version
 LIMIT $3
"""

# The horizon: the oldest transaction that may still add rows to this log. Transaction
# ids are cluster-wide, so `pg_snapshot_xmin` alone also waits for transactions of other
# databases, which can never write here: one long write elsewhere on the cluster stopped
# every subscriber until it ended. An id in flight in this statement's snapshot counts
# unless pg_stat_activity shows it running in another database; one that has ended since
# (its database unknown) still counts, which only holds this one read back.
_HORIZON_SQL = """(
SELECT coalesce(min(x.xid), pg_snapshot_xmax(pg_current_snapshot()))
  FROM pg_snapshot_xip(pg_current_snapshot()) AS x(xid)
 WHERE x.xid::xid NOT IN (SELECT a.backend_xid FROM pg_stat_activity AS a
                           WHERE a.backend_xid IS NOT NULL
                             AND a.datname <> current_database()))"""

_HEAD_SQL = f"""
SELECT e.tx_id, e.position
  FROM (SELECT {_HORIZON_SQL} AS horizon) AS h
  JOIN LATERAL (
        SELECT tx_id, position FROM es_events
         WHERE tx_id < h.horizon
         ORDER BY tx_id DESC, position DESC
         LIMIT 1) AS e ON true
"""


# The last committed row, horizon or not (the primary key's order, read backwards).
_LAST_COMMITTED_SQL = """
SELECT tx_id, position FROM es_events ORDER BY tx_id DESC, position DESC LIMIT 1
"""


_LATER_IN_TRANSACTION_SQL = """
SELECT EXISTS (SELECT 1 FROM es_events WHERE tx_id = $1::xid8 AND position > $2::bigint)
"""


def _read_all_sql(filter: EventFilter | None) -> str:
    """Events after ($1, $2) below the horizon, at most $3; the horizon rides on every row
    (and on a lone row of NULLs when nothing matched) so a subscriber can skip past it."""
    conditions = ["(tx_id, position) > ($1::xid8, $2::bigint)", "tx_id < h.horizon"]
    if filter is not None and filter.stream_prefixes:
        conditions.append("stream LIKE ANY ($4::text[])")
    if filter is not None and filter.event_types:
        conditions.append("type = ANY ($5::text[])")
    return f"""
SELECT h.horizon, e.*
  FROM (SELECT {_HORIZON_SQL} AS horizon,
               $4::text[] AS prefixes, $5::text[] AS types) AS h
  LEFT JOIN LATERAL (
        SELECT {_COLUMNS} FROM es_events
         WHERE {" AND ".join(conditions)}
         ORDER BY tx_id, position
         LIMIT $3) AS e ON true
"""


def _count_all_sql(filter: EventFilter | None) -> str:
    """How many events after ($1, $2) up to ($3, $4) inclusive, at most $5 (NULL: all);
    the filter's prefixes and types are $6 and $7 when it has them."""
    conditions = [
        "(tx_id, position) > ($1::xid8, $2::bigint)",
        "(tx_id, position) <= ($3::xid8, $4::bigint)",
    ]
    if filter is not None and filter.stream_prefixes:
        conditions.append("stream LIKE ANY ($6::text[])")
    if filter is not None and filter.event_types:
        number = 7 if filter.stream_prefixes else 6
        conditions.append(f"type = ANY (${number}::text[])")
    return f"""
SELECT count(*) FROM (
  SELECT 1 FROM es_events WHERE {" AND ".join(conditions)} LIMIT $5::bigint) AS counted
"""


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# msgspec's decoder builds the same dicts as orjson.loads, faster on these small objects
# (an order request's data: 2.55 against 3.3 us; a whole decoded row: ~4.5 against ~5.1 us).
# It runs for every event a catch-up reads, twice (data, metadata).
_decode_json = msgspec.json.Decoder().decode


def _recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """Records from rows of `_COLUMNS`. Unpacking each row at once and building the
    structs positionally is a little cheaper (~7%) than indexing field by field with
    keywords; this loop runs for every event a catch-up reads."""
    loads = _decode_json
    return [
        RecordedEvent(
            event_id,
            stream,
            version,
            LogPosition(tx, position),
            event_type,
            loads(data),
            loads(metadata),
            recorded_at,
        )
        for position, tx, event_id, stream, version, event_type, data, metadata, recorded_at in rows
    ]


def _recorded_after_horizon(rows: Sequence[Any]) -> list[RecordedEvent]:
    """`_recorded` for read_all's rows, which carry the horizon in front of `_COLUMNS`."""
    loads = _decode_json
    return [
        RecordedEvent(
            event_id,
            stream,
            version,
            LogPosition(tx, position),
            event_type,
            loads(data),
            loads(metadata),
            recorded_at,
        )
        for _horizon, position, tx, event_id, stream, version, event_type, data, metadata, recorded_at in rows  # noqa: E501
    ]


class PostgresEventStore(EventStore):
    """The event store in one PostgreSQL database (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        poll_interval: float = 0.1,
        subscription_batch: int = 2000,
        flushers: int = DEFAULT_FLUSHERS,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._poll_interval = poll_interval
        self._subscription_batch = subscription_batch
        self._signal = ChangeSignal()
        self._own_backend_pids: set[int] = set()
        self._listener = NotificationListener(dsn, self._signal, self._own_backend_pids)
        self._notifier = CommitNotifier(dsn, self._own_backend_pids)
        self._writer = GroupCommitWriter(pool, self._after_commit, flushers=flushers)
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_pool_size: int = 2,
        max_pool_size: int = 10,
        poll_interval: float = 0.1,
        flushers: int = DEFAULT_FLUSHERS,
    ) -> PostgresEventStore:
        """Connect, migrate the schema (idempotent) and start the group-commit flushers."""
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_pool_size,
            max_size=max_pool_size,
            server_settings={
                # Plans here are tiny; JIT would only add latency to big catch-up reads.
                "jit": "off",
                # Every read of the log is an ordered walk of an index. With a large page
                # and a row estimate that lags a growing log, the planner instead chose a
                # bitmap scan of the whole tail plus an external sort on disk: 116 ms
                # instead of 6 ms for a 5000-event page of a 60k-event log.
                "enable_sort": "off",
                "enable_bitmapscan": "off",
                # The append statement's plan is made once per connection, often while the
                # log is young: a planner that then hashed a sequential scan of es_events
                # would keep doing so on a grown log. Every lookup here has its index.
                "enable_seqscan": "off",
            },
            reset=keep_session,
        )
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
        except BaseException:
            await pool.close()
            raise
        store = cls(dsn, pool, poll_interval=poll_interval, flushers=flushers)
        store._writer.start()
        return store

    @property
    def pool(self) -> asyncpg.Pool:
        """The store's pool, for callers that keep their own tables in the same database."""
        return self._pool

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        await self._notifier.stop()
        await self._listener.stop()
        self._signal.notify()  # wake subscribers so they notice the store is closed
        await self._pool.close()

    # --- writing ---------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: Expectation = ANY,
    ) -> AppendResult:
        return await self._writer.append(encode_request(stream, events, expected_version))

    async def append_multi(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        streams = [part.stream for part in appends]
        if len(set(streams)) != len(streams):
            raise ValueError("an atomic multi-stream append names each stream once")
        requests = [
            encode_request(part.stream, part.events, part.expected_version) for part in appends
        ]
        if not requests:
            return []
        self._check_open()
        return await run_to_completion(self._append_atomically(requests))

    async def _append_atomically(self, requests: list[AppendRequest]) -> list[AppendResult]:
        async with self._pool.acquire() as connection:
            outcomes = await call_append_retrying(connection, requests, atomic=True)
            results: list[AppendResult] = []
            for outcome in outcomes:
                if not isinstance(outcome, AppendResult):  # atomic mode raises refusals
                    raise outcome
                results.append(outcome)
            await self._after_commit(connection, results)
        return results

    async def _after_commit(
        self, connection: PgConnection, results: Sequence[AppendResult]
    ) -> None:
        committed_tx = max((r.positions[-1].tx for r in results if r.positions), default=0)
        if committed_tx:
            self._signal.notify(committed_tx)
            self._notifier.committed(committed_tx)

    # --- reading ---------------------------------------------------------------------

    async def read_stream(
        self, stream: str, from_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        self._check_open()
        rows = await run_to_completion(
            self._pool.fetch(_READ_STREAM_SQL, stream, max(from_version, 0), limit)
        )
        return _recorded(rows)

    async def read_all(
        self,
        after: LogPosition | None = None,
        filter: EventFilter | None = None,
        limit: int = 1000,
    ) -> list[RecordedEvent]:
        events, _horizon = await self._read_all_below_horizon(after, filter, limit)
        return events

    async def _read_all_below_horizon(
        self, after: LogPosition | None, filter: EventFilter | None, limit: int
    ) -> tuple[list[RecordedEvent], int]:
        self._check_open()
        prefixes = [_like_prefix(p) for p in filter.stream_prefixes] if filter else []
        types = list(filter.event_types) if filter else []
        rows = await run_to_completion(
            self._pool.fetch(
                _read_all_sql(filter),
                after.tx if after else 0,
                after.seq if after else 0,
                limit,
                prefixes,
                types,
            )
        )
        horizon: int = rows[0][0]
        if rows[0][1] is None:  # the lone row of NULLs: nothing matched
            return [], horizon
        return _recorded_after_horizon(rows), horizon

    async def count_all(
        self,
        after: LogPosition | None,
        upto: LogPosition,
        filter: EventFilter | None = None,
        cap: int | None = None,
    ) -> int:
        # Counted in the database: reading the rows to count them decoded every event the
        # lag watcher measured, once a second for each consumer (most of the service's
        # JSON decoding in the bench). Rows up to a visible position are all committed, so
        # no horizon is needed.
        self._check_open()
        arguments: list[Any] = [
            after.tx if after else 0,
            after.seq if after else 0,
            upto.tx,
            upto.seq,
            cap,
        ]
        if filter is not None and filter.stream_prefixes:
            arguments.append([_like_prefix(p) for p in filter.stream_prefixes])
        if filter is not None and filter.event_types:
            arguments.append(list(filter.event_types))
        counted: int = await run_to_completion(
            self._pool.fetchval(_count_all_sql(filter), *arguments)
        )
        return counted

    async def transaction_may_continue(self, position: LogPosition) -> bool:
        # A transaction's rows become visible together: once one is read, all are there.
        # One probe of the primary key, where the head would look at the horizon.
        self._check_open()
        more: bool = await run_to_completion(
            self._pool.fetchval(_LATER_IN_TRANSACTION_SQL, position.tx, position.seq)
        )
        return more

    async def head_position(self) -> LogPosition | None:
        self._check_open()
        row = await run_to_completion(self._pool.fetchrow(_HEAD_SQL))
        return None if row is None else LogPosition(row[0], row[1])

    async def last_committed_position(self) -> LogPosition | None:
        self._check_open()
        row = await run_to_completion(self._pool.fetchrow(_LAST_COMMITTED_SQL))
        return None if row is None else LogPosition(row[0], row[1])

    # --- subscribing -----------------------------------------------------------------

    async def subscribe_all(
        self,
        after: LogPosition | None = None,
        filter: EventFilter | None = None,
        min_wait_s: float = 0.0,
    ) -> AsyncIterator[RecordedEvent]:
        await self._listener.start()
        batch = self._subscription_batch
        cursor = after
        pacer = _WakePacer(self._poll_interval)
        clock = asyncio.get_running_loop().time
        read_at = clock()
        # While catching up, the next page is fetched while this one is being consumed.
        prefetched: asyncio.Task[tuple[list[RecordedEvent], int]] | None = None
        try:
            while True:
                generation = self._signal.generation
                if prefetched is not None:
                    events, horizon = await prefetched
                    prefetched = None
                else:
                    read_at = clock()
                    events, horizon = await self._read_all_below_horizon(cursor, filter, batch)
                if events:
                    cursor = events[-1].position
                if len(events) == batch:
                    prefetched = asyncio.create_task(
                        self._read_all_below_horizon(cursor, filter, batch)
                    )
                for event in events:
                    yield event
                if len(events) == batch:
                    continue
                # Every row below the horizon was scanned: skip past the filtered-out ones.
                below_horizon = LogPosition(horizon, 0)
                if cursor is None or cursor < below_horizon:
                    cursor = below_horizon
                # Committed events still hidden behind an older running transaction: re-read
                # soon, as that transaction may not be a writer of ours that will NOTIFY.
                hidden_commits = self._signal.latest_committed_tx >= horizon
                await self._wait(generation, pacer.next_wait(hidden_commits))
                # A commit seen while waiting is read on the next round either way: the
                # generation was taken before this round's read.
                if (wait_more_s := read_at + min_wait_s - clock()) > 0:
                    await asyncio.sleep(wait_more_s)
        finally:
            if prefetched is not None:
                prefetched.cancel()
                with contextlib.suppress(BaseException):
                    await prefetched

    async def subscribe_stream(
        self, stream: str, from_version: int = 0
    ) -> AsyncIterator[RecordedEvent]:
        # A writer takes a stream's next version only once it sees the one before it
        # committed (or writes both itself), so a stream's versions commit in order and
        # reading by version needs no horizon.
        await self._listener.start()
        batch = self._subscription_batch
        next_version = max(from_version, 0)
        while True:
            generation = self._signal.generation
            events = await self.read_stream(stream, next_version, batch)
            for event in events:
                yield event
            if events:
                next_version = events[-1].version + 1
            if len(events) == batch:
                continue
            await self._wait(generation, self._poll_interval)

    async def _wait(self, generation: int, timeout: float) -> None:
        await self._signal.wait_past(generation, timeout)
        self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreUnavailable("event store closed")


class _WakePacer:
    """How long a subscriber waits for a NOTIFY before re-reading anyway.

    Idle, it waits the poll interval (the safety net for a lost notification). While
    committed events are hidden behind the horizon (an older transaction, usually another
    flusher's commit a moment away, still runs) it re-reads soon: 0.5 ms, backing off by
    half again each time but never beyond 4 ms, so a delivery is held up by at most a few
    milliseconds once the horizon moves. (Backing off to the poll interval put the p99
    append-to-delivery latency at ~100 ms.)
    """

    _FIRST_RETRY = 0.0005
    _LONGEST_RETRY = 0.004
    _GROWTH = 1.5

    def __init__(self, idle_wait: float) -> None:
        self._idle_wait = idle_wait
        self._longest_retry = min(self._LONGEST_RETRY, idle_wait)
        self._retry_wait = self._FIRST_RETRY

    def next_wait(self, hidden_commits: bool) -> float:
        if not hidden_commits:
            self._retry_wait = self._FIRST_RETRY
            return self._idle_wait
        wait = self._retry_wait
        self._retry_wait = min(self._retry_wait * self._GROWTH, self._longest_retry)
        return wait
