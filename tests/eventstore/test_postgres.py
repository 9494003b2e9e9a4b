"""PostgreSQL adapter behaviour beyond the shared contract: the transaction horizon,
migrations (from an empty database and from the baseline), group commit and id conflicts."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.eventstore import (
    ANY,
    NO_STREAM,
    EventFilter,
    EventIdConflict,
    NewEvent,
    StreamAppend,
    WrongExpectedVersion,
    open_event_store,
)
from server.eventstore.postgres import PostgresEventStore, schema
from server.eventstore.postgres.append import FAST_APPEND_SQL, expectation_code
from server.eventstore.postgres.schema import (
    EXPECT_ANY,
    EXPECT_NO_STREAM,
    MIGRATIONS,
    migrate,
)
from server.eventstore.postgres.store import _read_all_sql


@pytest.fixture
async def pg_store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    store = await PostgresEventStore.open(database_url)
    yield store
    await store.close()


@pytest.fixture
def prefix() -> str:
    return f"p{uuid.uuid4().hex[:10]}-"


async def test_a_transaction_that_commits_late_is_delivered_not_skipped(
    pg_store: PostgresEventStore, database_url: str, prefix: str
) -> None:
    """The identity-column gap: B commits while the older A is still open. A reader must
    not pass B's position before A is visible, else A would be skipped for ever."""
    mine = EventFilter(stream_prefixes=(prefix,))
    start = await pg_store.head_position()
    subscription = pg_store.subscribe_all(start, mine)
    slow_writer = await asyncpg.connect(database_url)
    try:
        late = NewEvent("Late", {})
        transaction = slow_writer.transaction()
        await transaction.start()
        await slow_writer.execute(
            "SELECT * FROM es_append_each($1, $2, $3, $4, $5, $6, $7, false)",
            [f"{prefix}a"], [-2], [1], [late.event_id], ["Late"], ["{}"], ["{}"],
        )  # fmt: skip
        early = await pg_store.append(f"{prefix}b", [NewEvent("Early", {})], ANY)

        # Committed, but behind the open transaction: not readable yet.
        assert await pg_store.read_all(start, mine) == []
        assert await pg_store.read_stream(f"{prefix}b") != []

        await transaction.commit()
        delivered = await asyncio.wait_for(_take(subscription, 2), 60)
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
        await slow_writer.close()

    assert [e.type for e in delivered] == ["Late", "Early"]
    assert delivered[1].position == early.positions[0]
    assert delivered[0].position < delivered[1].position


async def test_the_last_committed_position_includes_a_commit_behind_an_open_transaction(
    pg_store: PostgresEventStore, database_url: str, prefix: str
) -> None:
    """A writer's token must never look beyond the log (queries answer OUT_OF_RANGE for
    that), even while an older transaction holds the subscribers' head back."""
    slow_writer = await asyncpg.connect(database_url)
    try:
        transaction = slow_writer.transaction()
        await transaction.start()
        await slow_writer.execute(
            "SELECT * FROM es_append_each($1, $2, $3, $4, $5, $6, $7, false)",
            [f"{prefix}a"], [-2], [1], [uuid.uuid4()], ["Late"], ["{}"], ["{}"],
        )  # fmt: skip
        early = await pg_store.append(f"{prefix}b", [NewEvent("Early", {})], ANY)
        head = await pg_store.head_position()
        assert head is None or head < early.positions[0]
        assert await pg_store.last_committed_position() == early.positions[0]
        await transaction.rollback()
    finally:
        await slow_writer.close()


async def test_a_write_open_in_another_database_does_not_hold_delivery_back(
    pg_store: PostgresEventStore, fresh_database_url: str, prefix: str
) -> None:
    """Transaction ids are cluster-wide, but a transaction of another database can never
    add rows to this log: it must not hold the horizon back. (It did: one open write
    elsewhere on the cluster stopped every subscriber, the engine's included, until it
    ended.) The other write stays open until the event has been read and delivered."""
    mine = EventFilter(stream_prefixes=(prefix,))
    start = await pg_store.head_position()
    subscription = pg_store.subscribe_all(start, mine)
    elsewhere = await asyncpg.connect(fresh_database_url)  # another database, same cluster
    try:
        transaction = elsewhere.transaction()
        await transaction.start()
        await elsewhere.execute("CREATE TABLE holds_an_xid (x int)")
        written = await pg_store.append(f"{prefix}a", [NewEvent("Written", {})], ANY)
        # Bounded only so a regression fails instead of hanging: the other transaction
        # stays open for as long as this waits.
        delivered = await asyncio.wait_for(_take(subscription, 1), 30)
        assert await pg_store.read_all(start, mine) == delivered
        assert await pg_store.head_position() >= written.positions[0]
        await transaction.rollback()
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
        await elsewhere.close()
    assert [event.position for event in delivered] == list(written.positions)


async def test_a_finished_transaction_does_not_continue_whatever_follows_it(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    """PostgreSQL tells transactions apart: the last event of one does not continue even
    with later transactions visible after it (the port's default would say it may)."""
    atomic = await pg_store.append_multi(
        [StreamAppend(f"{prefix}a", [NewEvent("A", {}), NewEvent("A", {})], NO_STREAM)]
    )
    await pg_store.append(f"{prefix}b", [NewEvent("B", {})], NO_STREAM)
    first, last = atomic[0].positions

    assert await pg_store.transaction_may_continue(first)
    assert not await pg_store.transaction_may_continue(last)


async def _take(subscription: AsyncIterator, count: int) -> list:  # type: ignore[type-arg]
    taken = []
    async for event in subscription:
        taken.append(event)
        if len(taken) == count:
            break
    return taken


async def test_migrations_are_safe_twice_and_from_two_processes_at_once(
    fresh_database_url: str,
) -> None:
    first, second = await asyncio.gather(
        open_event_store(fresh_database_url), open_event_store(fresh_database_url)
    )
    await first.close()
    await second.close()
    connection = await asyncpg.connect(fresh_database_url)
    try:
        assert await migrate(connection) == []
        applied = await connection.fetch("SELECT version FROM es_schema_migrations ORDER BY 1")
        assert [row["version"] for row in applied] == [version for version, _, _ in MIGRATIONS]
    finally:
        await connection.close()
    third = await open_event_store(fresh_database_url)
    await third.append("s", [NewEvent("X", {})], NO_STREAM)
    await third.close()


async def _tables_and_versions(database_url: str) -> tuple[set[str], list[int]]:
    """The event store's tables in `database_url`, and the migration steps it records."""
    connection = await asyncpg.connect(database_url)
    try:
        tables = {
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename LIKE 'es\\_%'"
            )
        }
        versions = [
            row["version"]
            for row in await connection.fetch("SELECT version FROM es_schema_migrations ORDER BY 1")
        ]
    finally:
        await connection.close()
    return tables, versions


async def test_an_empty_database_migrates_to_the_log_without_es_checkpoints(
    fresh_database_url: str,
) -> None:
    store = await open_event_store(fresh_database_url)
    await store.close()

    assert await _tables_and_versions(fresh_database_url) == (
        {"es_events", "es_schema_migrations"},
        [9, 10],
    )


async def test_a_database_at_the_baseline_drops_es_checkpoints_and_keeps_its_log(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database migrated before step 10 existed: the baseline only, with a log.
    with monkeypatch.context() as before_step_10:
        before_step_10.setattr(schema, "MIGRATIONS", MIGRATIONS[:1])
        old = await open_event_store(fresh_database_url)
        written = await old.append("s", [NewEvent("X", {"n": 1})], NO_STREAM)
        await old.close()
    assert await _tables_and_versions(fresh_database_url) == (
        {"es_events", "es_checkpoints", "es_schema_migrations"},
        [9],
    )

    store = await open_event_store(fresh_database_url)
    try:
        (event,) = await store.read_stream("s")
    finally:
        await store.close()

    assert (event.position, event.data) == (written.positions[0], {"n": 1})
    assert await _tables_and_versions(fresh_database_url) == (
        {"es_events", "es_schema_migrations"},
        [9, 10],
    )


async def test_concurrent_single_appends_share_transactions(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    appends = [pg_store.append(f"{prefix}{i}", [NewEvent("X", {})], NO_STREAM) for i in range(50)]
    results = await asyncio.gather(*appends)
    transactions = {result.positions[0].tx for result in results}
    assert len(transactions) < 50
    assert sorted(r.stream for r in results) == sorted(f"{prefix}{i}" for i in range(50))


async def test_same_stream_twice_in_one_group_commit_gets_consecutive_versions(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    results = await asyncio.gather(
        *(pg_store.append(f"{prefix}s", [NewEvent("X", {"n": n})], ANY) for n in range(20))
    )
    assert sorted(r.first_version for r in results) == list(range(20))
    stored = await pg_store.read_stream(f"{prefix}s")
    assert [e.version for e in stored] == list(range(20))


async def test_some_ids_already_stored_elsewhere_is_an_id_conflict(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    shared = NewEvent("X", {})
    await pg_store.append(f"{prefix}a", [shared], NO_STREAM)
    with pytest.raises(EventIdConflict):
        await pg_store.append(f"{prefix}b", [NewEvent("Y", {}), shared], NO_STREAM)
    with pytest.raises(EventIdConflict):
        await pg_store.append_multi([StreamAppend(f"{prefix}c", [shared], NO_STREAM)])
    assert await pg_store.read_stream(f"{prefix}b") == []


async def test_atomic_append_repeated_is_idempotent(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    parts = [
        StreamAppend(f"{prefix}a", [NewEvent("X", {})], NO_STREAM),
        StreamAppend(f"{prefix}b", [NewEvent("Y", {})], NO_STREAM),
    ]
    assert await pg_store.append_multi(parts) == await pg_store.append_multi(parts)
    assert len(await pg_store.read_stream(f"{prefix}a")) == 1


async def test_the_same_stream_twice_in_an_atomic_append_is_refused(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    with pytest.raises(ValueError):
        await pg_store.append_multi(
            [
                StreamAppend(f"{prefix}a", [NewEvent("X", {})]),
                StreamAppend(f"{prefix}a", [NewEvent("Y", {})]),
            ]
        )


async def test_prefix_filter_treats_like_wildcards_literally(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    start = await pg_store.head_position()
    await pg_store.append(f"{prefix}a_b", [NewEvent("X", {})])
    last = await pg_store.append(f"{prefix}aXb", [NewEvent("X", {})])
    while (head := await pg_store.head_position()) is None or head < last.positions[0]:
        await asyncio.sleep(0.002)  # visible once older transactions (cluster-wide) ended
    found = await pg_store.read_all(start, EventFilter(stream_prefixes=(f"{prefix}a_",)))
    assert [e.stream for e in found] == [f"{prefix}a_b"]


async def test_bad_urls_and_expectations_are_refused(pg_store: PostgresEventStore) -> None:
    with pytest.raises(ValueError):
        await open_event_store("mysql://localhost/x")
    with pytest.raises(ValueError):
        await pg_store.append("s", [NewEvent("X", {})], -3)


async def test_two_processes_racing_to_create_the_same_streams(
    database_url: str, prefix: str
) -> None:
    """Two stores (two pools, as two processes) create the same new streams at once:
    exactly one NO_STREAM append wins each stream, the other is told the actual version."""
    first, second = (
        await PostgresEventStore.open(database_url),
        await PostgresEventStore.open(database_url),
    )
    try:
        stream_count = 40
        races = [
            store.append(f"{prefix}{index}", [NewEvent("X", {"by": label})], NO_STREAM)
            for index in range(stream_count)
            for label, store in (("first", first), ("second", second))
        ]
        outcomes = await asyncio.gather(*races, return_exceptions=True)
    finally:
        await first.close()
        await second.close()
    for index in range(stream_count):
        pair = outcomes[2 * index : 2 * index + 2]
        winners = [o for o in pair if not isinstance(o, BaseException)]
        losers = [o for o in pair if isinstance(o, BaseException)]
        assert len(winners) == 1, pair
        assert len(losers) == 1 and isinstance(losers[0], WrongExpectedVersion)
        assert losers[0].actual == 0


async def test_a_group_commit_mixing_repeats_and_new_appends(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    repeated = [NewEvent("X", {})]
    original = await pg_store.append(f"{prefix}a", repeated, NO_STREAM)
    outcomes = await asyncio.gather(
        pg_store.append(f"{prefix}a", repeated, NO_STREAM),
        pg_store.append(f"{prefix}b", [NewEvent("Y", {})], NO_STREAM),
        pg_store.append(f"{prefix}a", [NewEvent("Z", {})], NO_STREAM),
        return_exceptions=True,
    )
    assert outcomes[0] == original
    assert not isinstance(outcomes[1], BaseException) and outcomes[1].first_version == 0
    assert isinstance(outcomes[2], WrongExpectedVersion)


async def test_a_refused_repeat_beside_new_appends_gets_the_original_result(
    pg_store: PostgresEventStore, prefix: str
) -> None:
    """In one group commit: the statement writes the new appends and flags the refused
    request whose ids are stored; asked again alone, that one is answered as a repeat."""
    repeated = [NewEvent("X", {})]
    original = await pg_store.append(f"{prefix}a", repeated, NO_STREAM)
    outcomes = await asyncio.gather(
        pg_store.append(f"{prefix}a", repeated, NO_STREAM),
        pg_store.append(f"{prefix}b", [NewEvent("Y", {})], NO_STREAM),
        pg_store.append(f"{prefix}c", [NewEvent("Z", {})], 5),
        return_exceptions=True,
    )
    assert outcomes[0] == original
    assert not isinstance(outcomes[1], BaseException) and outcomes[1].first_version == 0
    assert isinstance(outcomes[2], WrongExpectedVersion) and outcomes[2].actual == -1
    assert [e.type for e in await pg_store.read_stream(f"{prefix}a")] == ["X"]


async def test_two_processes_appending_to_the_same_streams_get_gapless_versions(
    database_url: str, prefix: str
) -> None:
    """No stream rows are locked: two writers that read the same version race for the
    next on the unique (stream, version) index, and the loser settles again. Every
    append lands once, and each stream's versions run 0, 1, 2... with no gap."""
    stores = [await PostgresEventStore.open(database_url) for _ in range(2)]
    streams = [f"{prefix}{index}" for index in range(3)]
    try:
        appends = [
            store.append(streams[n % 3], [NewEvent("X", {"n": n}), NewEvent("Y", {"n": n})], ANY)
            for n in range(150)
            for store in stores
        ]
        results = await asyncio.gather(*appends)
        for stream in streams:
            events = await stores[0].read_stream(stream)
            assert [e.version for e in events] == list(range(len(events)))
            assert len(events) == 2 * 100
            mine = [r for r in results if r.stream == stream]
            assert sorted(r.first_version for r in mine) == list(range(0, len(events), 2))
    finally:
        for store in stores:
            await store.close()


async def test_the_append_statement_plan_reads_es_events_through_its_indexes_only(
    database_url: str,
) -> None:
    """Its generic plan (the one a connection keeps) guesses ten rows per array: it must
    still look each stream and id up in an index, and join no arrays by nested loops."""
    store = await PostgresEventStore.open(database_url)
    try:
        async with store.pool.acquire() as connection:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            await connection.execute("PREPARE fast_append AS " + FAST_APPEND_SQL)
            try:
                plan = await connection.fetch(
                    "EXPLAIN EXECUTE fast_append(ARRAY['s'], ARRAY[-2]::bigint[], ARRAY[1],"
                    " ARRAY[gen_random_uuid()], ARRAY['t'], ARRAY['{}'], ARRAY['{}'],"
                    " ARRAY['s'], ARRAY[1], ARRAY[1], false)"
                )
            finally:
                await connection.execute("DEALLOCATE fast_append")
                await connection.execute("RESET plan_cache_mode")
        text = "\n".join(row[0] for row in plan)
        assert "Seq Scan" not in text, text
        assert "Hash Join" not in text and "Merge Join" not in text, text
        assert text.count("using es_events_stream_version_key") == 1, text
        assert text.count("using es_events_event_id_key") == 1, text
    finally:
        await store.close()


async def test_a_cancelled_caller_lets_go_at_once_and_its_query_runs_to_its_end(
    pg_store: PostgresEventStore, database_url: str, prefix: str
) -> None:
    """The store never cancels a query in flight (asyncpg's wait for the server to confirm
    a cancel has hung for good): the cancelled caller returns at once, the query finishes
    on its own and its connection goes back to the pool. An atomic append cancelled that
    way may still be written, as after a crash right after sending it."""
    stream = f"{prefix}s"
    await pg_store.append(stream, [NewEvent("First", {})], NO_STREAM)
    in_use = pg_store.pool.get_size() - pg_store.pool.get_idle_size()  # the flushers'
    blocker = await asyncpg.connect(database_url)
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute(  # the stream's next version, uncommitted: the append waits
            "INSERT INTO es_events (event_id, stream, version, type, data, metadata)"
            " VALUES (gen_random_uuid(), $1, 1, 'Blocker', '{}', '{}')",
            stream,
        )
        append = asyncio.create_task(
            pg_store.append_multi([StreamAppend(stream, [NewEvent("Second", {})], 0)])
        )
        async with asyncio.timeout(30):
            while not await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ):
                await asyncio.sleep(0.01)
        append.cancel()
        async with asyncio.timeout(5):  # let go while the query is still blocked
            with pytest.raises(asyncio.CancelledError):
                await append
        await holding.rollback()
    finally:
        await blocker.close()
    async with asyncio.timeout(30):
        while len(await pg_store.read_stream(stream)) < 2:
            await asyncio.sleep(0.01)
        while pg_store.pool.get_size() - pg_store.pool.get_idle_size() > in_use:
            await asyncio.sleep(0.01)
    assert [e.type for e in await pg_store.read_stream(stream)] == ["First", "Second"]


async def test_appends_recover_after_the_server_drops_the_store_connections(
    fresh_database_url: str, prefix: str
) -> None:
    # A database of its own: every connection to it is dropped, and no other test's are.
    store = await PostgresEventStore.open(fresh_database_url)
    try:
        await asyncio.gather(*(store.append(f"{prefix}{i}", [NewEvent("X", {})]) for i in range(9)))
        admin = await asyncpg.connect(fresh_database_url)
        try:
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert dropped >= 1
        # A batch in flight when the client learns of the loss may fail; then writes resume.
        for attempt in range(50):
            try:
                await store.append(f"{prefix}probe", [NewEvent("X", {"attempt": attempt})])
                break
            except Exception:
                await asyncio.sleep(0.05)
        results = await asyncio.gather(
            *(store.append(f"{prefix}after-{i}", [NewEvent("X", {})], NO_STREAM) for i in range(10))
        )
        assert [r.first_version for r in results] == [0] * 10
    finally:
        await store.close()


async def test_live_delivery_across_processes_wakes_on_notify_not_on_the_poll(
    pg_store: PostgresEventStore, database_url: str, prefix: str
) -> None:
    """The subscriber's store polls once an hour, so only LISTEN/NOTIFY from the writer's
    store (another pool and listener, as another process) can deliver within the guard."""
    subscriber_store = await PostgresEventStore.open(database_url, poll_interval=3600)
    try:
        start = await pg_store.head_position()
        subscription = subscriber_store.subscribe_all(start, EventFilter(stream_prefixes=(prefix,)))
        first = asyncio.create_task(_take(subscription, 1))
        await asyncio.sleep(0.2)  # the subscriber has read the history and is waiting
        written = await pg_store.append(f"{prefix}live", [NewEvent("Live", {})], NO_STREAM)
        delivered = await asyncio.wait_for(first, 60)
        await subscription.aclose()  # type: ignore[attr-defined]
    finally:
        await subscriber_store.close()
    assert [e.position for e in delivered] == list(written.positions)


async def test_a_catch_up_page_walks_the_index_never_sorts_the_log(
    fresh_database_url: str,
) -> None:
    """A page of read_all is an ordered index walk whatever its size. Left to itself, on a
    log grown since its last ANALYZE, the planner sorted the whole tail (on disk) for a
    page that covered a large share of it."""
    store = await PostgresEventStore.open(fresh_database_url)
    try:
        for batch in range(6):
            events = [NewEvent("Filler", {"n": index, "pad": "x" * 150}) for index in range(1000)]
            await store.append(f"filler-{batch}", events, NO_STREAM)
        async with store.pool.acquire() as connection:
            for page_filter in (None, EventFilter(stream_prefixes=("filler-",))):
                plan = await connection.fetch(
                    "EXPLAIN " + _read_all_sql(page_filter), 0, 0, 5000, ["filler-%"], []
                )
                text = "\n".join(row[0] for row in plan)
                assert "Sort" not in text, text
                assert "Index Scan using es_events_pkey" in text, text
        assert len(await store.read_all(None, limit=5000)) == 5000
    finally:
        await store.close()


async def test_the_append_function_keeps_its_plan_settings(pg_store: PostgresEventStore) -> None:
    """Replacing a function (CREATE OR REPLACE) without its SET clauses drops them: a
    migration that replaces es_append_each must repeat them, or plans degrade to sequential
    scans."""
    async with pg_store.pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT proname, proconfig FROM pg_proc WHERE proname LIKE 'es\\_append%'"
        )
    assert [row["proname"] for row in rows] == ["es_append_each"]
    assert set(rows[0]["proconfig"]) == {"enable_seqscan=off", "plan_cache_mode=force_generic_plan"}


async def test_two_stores_appending_the_same_events_at_once_write_them_once(
    database_url: str, prefix: str
) -> None:
    """The second insert of the same ids fails on the unique index; es_append then answers
    from what the first stored, as for any repeat: the original result, or a conflict."""
    first, second = (
        await PostgresEventStore.open(database_url),
        await PostgresEventStore.open(database_url),
    )
    try:
        for index in range(20):
            events = [NewEvent("X", {"n": index}), NewEvent("Y", {"n": index})]
            stream = f"{prefix}{index}"
            outcomes = await asyncio.gather(
                first.append(stream, events, ANY),
                second.append(stream, events, ANY),
                return_exceptions=True,
            )
            assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
            assert outcomes[0] == outcomes[1]
            assert len(await first.read_stream(stream)) == 2
    finally:
        await first.close()
        await second.close()


def test_expectation_codes_accept_ints_and_the_symbols_only() -> None:
    class Version(enum.IntEnum):
        THIRD = 2

    assert [expectation_code(e) for e in (0, 7, Version.THIRD)] == [0, 7, 2]
    assert [expectation_code(e) for e in (ANY, NO_STREAM)] == [EXPECT_ANY, EXPECT_NO_STREAM]
    for refused in (True, -1, "3", 1.0):
        with pytest.raises(ValueError):
            expectation_code(refused)  # type: ignore[arg-type]
