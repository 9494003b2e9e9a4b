"""The PostgreSQL event store's schema, applied by migrations that run on open.

Each migration runs once, recorded in `es_schema_migrations`; all of them run in one
transaction under a transaction-scoped advisory lock, so opening the store twice, or from
two processes at once, is safe.

Layout:
- `es_events`: the log. `tx_id` (xid8, the writer's transaction id) and `position` (an
  identity) order it; readers only read rows whose `tx_id` is below the oldest transaction
  still running, so a transaction that commits late can never be skipped.
- `es_checkpoints`: subscribers' positions, updatable in the subscriber's own transaction.
- A stream's version is its highest event's; the unique (stream, version) index is what
  stops two writers from taking the same one.
- Appends: one plain statement per batch (postgres/append.py); `es_append_each(...)`
  settles what that statement hands over (repeats, races) request by request.
"""

from __future__ import annotations

from typing import Final

import asyncpg

# Any constant unique to this schema: pg_advisory_xact_lock takes a bigint key.
MIGRATION_LOCK_KEY: Final = 0x45_56_45_4E_54_53  # "EVENTS"

# Expected-version codes passed to es_append (exact versions are passed as themselves).
EXPECT_ANY: Final = -2
EXPECT_NO_STREAM: Final = -1
EXPECT_STREAM_EXISTS: Final = -4

# es_append outcome codes, one per request (per event row when events are returned).
OUTCOME_WRITTEN: Final = 0
OUTCOME_DUPLICATE: Final = 1
OUTCOME_WRONG_VERSION: Final = 2
OUTCOME_ID_CONFLICT: Final = 3

# SQLSTATEs es_append raises in atomic mode (class "ES" is not used by PostgreSQL).
SQLSTATE_WRONG_VERSION: Final = "ES409"
SQLSTATE_ID_CONFLICT: Final = "ES410"

NOTIFY_CHANNEL: Final = "es_events_appended"

_CREATE_TABLES = """
CREATE TABLE IF NOT EXISTS es_streams (
    stream  text   PRIMARY KEY,
    version bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS es_events (
    position    bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id    uuid        NOT NULL,
    stream      text        NOT NULL,
    version     bigint      NOT NULL,
    type        text        NOT NULL,
    data        json        NOT NULL,
    metadata    json        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT es_events_pkey PRIMARY KEY (tx_id, position),
    CONSTRAINT es_events_event_id_key UNIQUE (event_id),
    CONSTRAINT es_events_stream_version_key UNIQUE (stream, version)
);

CREATE TABLE IF NOT EXISTS es_checkpoints (
    name       text        PRIMARY KEY,
    position   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""

# One call appends many requests. Requests arrive sorted by stream so that concurrent
# batches lock stream rows in one order (no deadlocks). Per request it returns one row per
# event written (or found, for an idempotent repeat), or one row with the outcome and the
# stream's actual version when the request was refused. With p_atomic, a refusal raises
# instead, rolling back the whole call.
_CREATE_PER_REQUEST_FUNCTION = """
CREATE OR REPLACE FUNCTION {name}(
    p_streams   text[],
    p_expected  bigint[],
    p_counts    int[],
    p_event_ids uuid[],
    p_types     text[],
    p_data      text[],
    p_metadata  text[],
    p_atomic    boolean
) RETURNS TABLE (
    out_request  int,
    out_outcome  int,
    out_version  bigint,
    out_position bigint,
    out_tx       xid8
)
LANGUAGE plpgsql AS $$
DECLARE
    request_count  int := coalesce(array_length(p_streams, 1), 0);
    request_index  int;
    first_event    int := 1;
    last_event     int;
    event_count    int;
    stream_name    text;
    expected       bigint;
    current_version bigint;
    stream_created boolean;
    stored_count   int;
    same_stream_count int;
    lowest_offset  bigint;
    highest_offset bigint;
BEGIN
    FOR request_index IN 1..request_count LOOP
        stream_name := p_streams[request_index];
        expected := p_expected[request_index];
        event_count := p_counts[request_index];
        last_event := first_event + event_count - 1;
        stream_created := false;

        IF event_count = 0 THEN
            SELECT s.version INTO current_version FROM es_streams s WHERE s.stream = stream_name;
            current_version := coalesce(current_version, -1);
        ELSE
            -- Idempotency: are these event ids stored already, as this very append?
            SELECT count(*),
                   count(*) FILTER (WHERE e.stream = stream_name),
                   min(e.version - ids.ordinal),
                   max(e.version - ids.ordinal)
              INTO stored_count, same_stream_count, lowest_offset, highest_offset
              FROM unnest(p_event_ids[first_event:last_event]) WITH ORDINALITY
                   AS ids(event_id, ordinal)
              JOIN es_events e ON e.event_id = ids.event_id;
            IF stored_count > 0 THEN
                IF stored_count = event_count AND same_stream_count = event_count
                   AND lowest_offset = highest_offset
                   AND (expected IN (-2, -4) OR expected = lowest_offset) THEN
                    RETURN QUERY
                        SELECT request_index, 1, e.version, e.position, e.tx_id
                          FROM es_events e
                         WHERE e.event_id = ANY (p_event_ids[first_event:last_event])
                         ORDER BY e.version;
                    first_event := last_event + 1;
                    CONTINUE;
                END IF;
                IF stored_count = event_count AND same_stream_count = event_count
                   AND lowest_offset = highest_offset THEN
                    -- The same append, but at another expectation: a version conflict.
                    SELECT s.version INTO current_version
                      FROM es_streams s WHERE s.stream = stream_name;
                    IF p_atomic THEN
                        RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = 'wrong expected version',
                            DETAIL = json_build_object('stream', stream_name,
                                'expected', expected, 'actual', current_version)::text;
                    END IF;
                    RETURN QUERY SELECT request_index, 2, current_version,
                        NULL::bigint, NULL::xid8;
                    first_event := last_event + 1;
                    CONTINUE;
                END IF;
                IF p_atomic THEN
                    RAISE EXCEPTION USING ERRCODE = 'ES410', MESSAGE = 'event id conflict',
                        DETAIL = json_build_object('stream', stream_name)::text;
                END IF;
                RETURN QUERY SELECT request_index, 3, NULL::bigint, NULL::bigint, NULL::xid8;
                first_event := last_event + 1;
                CONTINUE;
            END IF;

            -- Lock the stream's row (creating it when the expectation allows a new stream).
            LOOP
                SELECT s.version INTO current_version
                  FROM es_streams s WHERE s.stream = stream_name FOR UPDATE;
                EXIT WHEN FOUND;
                current_version := -1;
                EXIT WHEN expected NOT IN (-2, -1);
                INSERT INTO es_streams (stream, version) VALUES (stream_name, event_count - 1)
                    ON CONFLICT (stream) DO NOTHING;
                IF FOUND THEN
                    stream_created := true;
                    EXIT;
                END IF;
                -- Another transaction created it meanwhile: loop to lock and re-check.
            END LOOP;
        END IF;

        IF NOT (expected = -2 OR expected = current_version
                OR (expected = -4 AND current_version >= 0)) THEN
            IF p_atomic THEN
                RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = 'wrong expected version',
                    DETAIL = json_build_object('stream', stream_name,
                        'expected', expected, 'actual', current_version)::text;
            END IF;
            RETURN QUERY SELECT request_index, 2, current_version, NULL::bigint, NULL::xid8;
        ELSIF event_count = 0 THEN
            RETURN QUERY SELECT request_index, 0, current_version, NULL::bigint, NULL::xid8;
        ELSE
            IF NOT stream_created THEN
                UPDATE es_streams SET version = current_version + event_count
                 WHERE stream = stream_name;
            END IF;
            RETURN QUERY
                WITH inserted AS (
                    INSERT INTO es_events (event_id, stream, version, type, data, metadata)
                    SELECT n.event_id, stream_name, current_version + n.ordinal, n.event_type,
                           n.event_data::json, n.event_metadata::json
                      FROM unnest(p_event_ids[first_event:last_event],
                                  p_types[first_event:last_event],
                                  p_data[first_event:last_event],
                                  p_metadata[first_event:last_event]) WITH ORDINALITY
                           AS n(event_id, event_type, event_data, event_metadata, ordinal)
                     ORDER BY n.ordinal
                    RETURNING es_events.version, es_events.position, es_events.tx_id
                )
                SELECT request_index, 0, inserted.version, inserted.position, inserted.tx_id
                  FROM inserted;
        END IF;
        first_event := last_event + 1;
    END LOOP;
END;
$$;
"""

# The common case in one pass of set-based statements, whatever the batch size: no event
# id is stored yet and each stream appears once. Anything else (an idempotent repeat, the
# same stream twice) goes to es_append_each, which walks the requests one by one. A stream
# created concurrently between our lock and our insert raises serialization_failure: the
# caller retries.
_CREATE_FAST_APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION es_append(
    p_streams   text[],
    p_expected  bigint[],
    p_counts    int[],
    p_event_ids uuid[],
    p_types     text[],
    p_data      text[],
    p_metadata  text[],
    p_atomic    boolean
) RETURNS TABLE (
    out_request  int,
    out_outcome  int,
    out_version  bigint,
    out_position bigint,
    out_tx       xid8
)
LANGUAGE plpgsql AS $$
DECLARE
    request_count    int := coalesce(array_length(p_streams, 1), 0);
    current_versions bigint[];
    accepted         boolean[];
    refused_index    int;
    new_count        int;
    created_count    int;
    event_request    int[];
    event_offset     int[];
BEGIN
    IF request_count = 0 THEN
        RETURN;
    END IF;
    IF (SELECT count(DISTINCT s) FROM unnest(p_streams) AS s) <> request_count
       OR EXISTS (SELECT 1 FROM es_events e WHERE e.event_id = ANY (p_event_ids)) THEN
        RETURN QUERY SELECT * FROM es_append_each(p_streams, p_expected, p_counts,
            p_event_ids, p_types, p_data, p_metadata, p_atomic);
        RETURN;
    END IF;

    -- Lock every existing stream row, in one (byte) order across all writers.
    WITH locked AS MATERIALIZED (
        SELECT s.stream, s.version FROM es_streams s
         WHERE s.stream = ANY (p_streams)
         ORDER BY s.stream COLLATE "C"
           FOR UPDATE
    )
    SELECT array_agg(coalesce(l.version, -1) ORDER BY r.ordinal)
      INTO current_versions
      FROM unnest(p_streams) WITH ORDINALITY AS r(stream, ordinal)
      LEFT JOIN locked l ON l.stream = r.stream;

    -- Check every expectation at once (-2 any, -1 no stream, -4 stream exists, else exact).
    SELECT array_agg(r.expected = -2 OR r.expected = r.current_version
                     OR (r.expected = -4 AND r.current_version >= 0) ORDER BY r.ordinal)
      INTO accepted
      FROM unnest(p_expected, current_versions) WITH ORDINALITY
           AS r(expected, current_version, ordinal);

    refused_index := array_position(accepted, false);
    IF p_atomic AND refused_index IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = 'wrong expected version',
            DETAIL = json_build_object('stream', p_streams[refused_index],
                'expected', p_expected[refused_index],
                'actual', current_versions[refused_index])::text;
    END IF;

    -- Refusals, and accepted appends of no events, answer with the current version.
    RETURN QUERY
        SELECT r.ordinal::int, CASE WHEN r.ok THEN 0 ELSE 2 END, r.current_version,
               NULL::bigint, NULL::xid8
          FROM unnest(accepted, current_versions, p_counts) WITH ORDINALITY
               AS r(ok, current_version, event_count, ordinal)
         WHERE NOT r.ok OR r.event_count = 0;

    WITH new_streams AS (
        SELECT r.stream, (r.event_count - 1)::bigint AS version
          FROM unnest(p_streams, accepted, current_versions, p_counts)
               AS r(stream, ok, current_version, event_count)
         WHERE r.ok AND r.current_version = -1 AND r.event_count > 0
    ), created AS (
        INSERT INTO es_streams (stream, version)
        SELECT stream, version FROM new_streams
        ON CONFLICT (stream) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM new_streams), (SELECT count(*) FROM created)
      INTO new_count, created_count;
    IF created_count <> new_count THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'a stream was created concurrently; retry the append';
    END IF;

    UPDATE es_streams s SET version = m.current_version + m.event_count
      FROM unnest(p_streams, accepted, current_versions, p_counts)
           AS m(stream, ok, current_version, event_count)
     WHERE s.stream = m.stream AND m.ok AND m.current_version >= 0 AND m.event_count > 0;

    SELECT array_agg(c.ordinal ORDER BY c.ordinal, g.event_offset),
           array_agg(g.event_offset ORDER BY c.ordinal, g.event_offset)
      INTO event_request, event_offset
      FROM unnest(p_counts) WITH ORDINALITY AS c(event_count, ordinal),
           generate_series(1, c.event_count) AS g(event_offset);

    RETURN QUERY
        WITH inserted AS (
            INSERT INTO es_events (event_id, stream, version, type, data, metadata)
            SELECT e.event_id, p_streams[e.request], current_versions[e.request] + e.event_offset,
                   e.event_type, e.event_data::json, e.event_metadata::json
              FROM unnest(p_event_ids, p_types, p_data, p_metadata, event_request, event_offset)
                   WITH ORDINALITY
                   AS e(event_id, event_type, event_data, event_metadata, request, event_offset,
                        ordinal)
             WHERE accepted[e.request]
             ORDER BY e.ordinal
            RETURNING es_events.stream, es_events.version, es_events.position, es_events.tx_id
        )
        SELECT r.ordinal::int, 0, i.version, i.position, i.tx_id
          FROM inserted i
          JOIN unnest(p_streams) WITH ORDINALITY AS r(stream, ordinal) ON r.stream = i.stream;
END;
$$;
"""

# PL/pgSQL caches its statements' plans per session and soon settles on a generic plan,
# made without the arrays' sizes and often while the tables were still small: `event_id =
# ANY (1000 ids)` then runs as a sequential scan comparing every row with every id, seconds
# per call on a grown log. Planning each statement for the actual call costs far less.
_FORCE_CUSTOM_PLANS = """
ALTER FUNCTION es_append(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION es_append_each(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET plan_cache_mode = force_custom_plan;
"""

# Every lookup in the append functions is a point lookup of a few keys (`stream = ANY (the
# batch's streams)`, `event_id = ANY (its ids)`). While a table is young or has grown since
# its last ANALYZE the planner still prefers a sequential scan, comparing each row with each
# key: on a log of 20k events a 128-request group commit spent 2.5 ms locking stream rows
# that way, against 0.4 ms through the index. The index is always the right plan here.
_INDEX_LOOKUPS_ONLY = """
ALTER FUNCTION es_append(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET enable_seqscan = off;
ALTER FUNCTION es_append_each(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET enable_seqscan = off;
"""

# With sequential scans off (step 6) a generic plan can no longer go wrong the way step 5
# guarded against: every lookup is an index lookup whatever the arrays hold. Planning ten
# statements afresh on every call, though, was most of the server's CPU per append (a
# one-event append: ~1.4 ms of PostgreSQL CPU with custom plans, ~0.65 ms with these).
# PL/pgSQL keeps one plan per statement per session, and the flushers keep their sessions.
_REUSE_PLANS = """
ALTER FUNCTION es_append(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION es_append_each(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET plan_cache_mode = force_generic_plan;
"""

# Step 8's fast path gives step 4's answers with fewer index descents. Step 4 looked every
# event id up before inserting (a descent per event that the insert's own unique check
# repeats) and created new streams' rows with ON CONFLICT DO NOTHING (a speculative insert:
# one more descent per new stream), raising serialization_failure for the caller to retry
# when a stream had been created meanwhile. Now both inserts are plain, in a
# subtransaction: a stored id or a stream created meanwhile fails them with
# unique_violation, which undoes the attempt and hands the call to es_append_each, as the
# id lookup did. A refused append is the one case the insert never sees, so only its ids
# are still looked up (a repeat of a stored append must get the original answer). Answers
# are collected first and returned after the subtransaction, so an undone attempt leaves
# none behind. PostgreSQL CPU per event, same-process interleaved calls: batches of 1000
# events ~28 -> ~23 us; group commits of 100 single-event appends to new streams ~58 ->
# ~51 us; of 5 ~171 -> ~160 us.
_CREATE_APPEND_WITHOUT_ID_LOOKUP = """
CREATE OR REPLACE FUNCTION es_append(
    p_streams   text[],
    p_expected  bigint[],
    p_counts    int[],
    p_event_ids uuid[],
    p_types     text[],
    p_data      text[],
    p_metadata  text[],
    p_atomic    boolean
) RETURNS TABLE (
    out_request  int,
    out_outcome  int,
    out_version  bigint,
    out_position bigint,
    out_tx       xid8
)
LANGUAGE plpgsql AS $$
DECLARE
    request_count    int := coalesce(array_length(p_streams, 1), 0);
    current_versions bigint[];
    accepted         boolean[];
    refused_index    int;
    event_request    int[];
    event_offset     int[];
    written_requests int[];
    written_versions bigint[];
    written_positions bigint[];
BEGIN
    IF request_count = 0 THEN
        RETURN;
    END IF;
    IF (SELECT count(DISTINCT s) FROM unnest(p_streams) AS s) <> request_count THEN
        RETURN QUERY SELECT * FROM es_append_each(p_streams, p_expected, p_counts,
            p_event_ids, p_types, p_data, p_metadata, p_atomic);
        RETURN;
    END IF;

    BEGIN
        -- Lock every existing stream row, in one (byte) order across all writers.
        WITH locked AS MATERIALIZED (
            SELECT s.stream, s.version FROM es_streams s
             WHERE s.stream = ANY (p_streams)
             ORDER BY s.stream COLLATE "C"
               FOR UPDATE
        )
        SELECT array_agg(coalesce(l.version, -1) ORDER BY r.ordinal)
          INTO current_versions
          FROM unnest(p_streams) WITH ORDINALITY AS r(stream, ordinal)
          LEFT JOIN locked l ON l.stream = r.stream;

        -- Check every expectation at once (-2 any, -1 no stream, -4 stream exists, else
        -- exact).
        SELECT array_agg(r.expected = -2 OR r.expected = r.current_version
                         OR (r.expected = -4 AND r.current_version >= 0) ORDER BY r.ordinal)
          INTO accepted
          FROM unnest(p_expected, current_versions) WITH ORDINALITY
               AS r(expected, current_version, ordinal);

        SELECT array_agg(c.ordinal ORDER BY c.ordinal, g.event_offset),
               array_agg(g.event_offset ORDER BY c.ordinal, g.event_offset)
          INTO event_request, event_offset
          FROM unnest(p_counts) WITH ORDINALITY AS c(event_count, ordinal),
               generate_series(1, c.event_count) AS g(event_offset);

        refused_index := array_position(accepted, false);
        -- A refused append may be the repeat of a stored one (whose answer is the
        -- original result): only its ids tell, and only es_append_each answers that.
        IF refused_index IS NOT NULL AND EXISTS (
            SELECT 1 FROM es_events e
             WHERE e.event_id = ANY (ARRAY(
                       SELECT x.event_id
                         FROM unnest(p_event_ids, event_request) AS x(event_id, request)
                        WHERE NOT accepted[x.request]))) THEN
            RAISE EXCEPTION USING ERRCODE = 'unique_violation',
                MESSAGE = 'a refused append has stored event ids';
        END IF;
        IF p_atomic AND refused_index IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = 'wrong expected version',
                DETAIL = json_build_object('stream', p_streams[refused_index],
                    'expected', p_expected[refused_index],
                    'actual', current_versions[refused_index])::text;
        END IF;

        -- New streams get their rows. One created meanwhile by another writer fails this
        -- with unique_violation too: es_append_each then finds it and answers.
        INSERT INTO es_streams (stream, version)
        SELECT r.stream, r.event_count - 1
          FROM unnest(p_streams, accepted, current_versions, p_counts)
               AS r(stream, ok, current_version, event_count)
         WHERE r.ok AND r.current_version = -1 AND r.event_count > 0;

        UPDATE es_streams s SET version = m.current_version + m.event_count
          FROM unnest(p_streams, accepted, current_versions, p_counts)
               AS m(stream, ok, current_version, event_count)
         WHERE s.stream = m.stream AND m.ok AND m.current_version >= 0 AND m.event_count > 0;

        WITH inserted AS (
            INSERT INTO es_events (event_id, stream, version, type, data, metadata)
            SELECT e.event_id, p_streams[e.request],
                   current_versions[e.request] + e.event_offset,
                   e.event_type, e.event_data::json, e.event_metadata::json
              FROM unnest(p_event_ids, p_types, p_data, p_metadata, event_request, event_offset)
                   WITH ORDINALITY
                   AS e(event_id, event_type, event_data, event_metadata, request,
                        event_offset, ordinal)
             WHERE accepted[e.request]
             ORDER BY e.ordinal
            RETURNING es_events.stream, es_events.version, es_events.position
        )
        SELECT array_agg(r.ordinal::int), array_agg(i.version), array_agg(i.position)
          INTO written_requests, written_versions, written_positions
          FROM inserted i
          JOIN unnest(p_streams) WITH ORDINALITY AS r(stream, ordinal) ON r.stream = i.stream;
    EXCEPTION WHEN unique_violation THEN
        -- An event id is stored already (a repeat, a conflict, or a racing writer's
        -- commit), or a stream was created meanwhile: everything above is undone; settle
        -- each request on its own.
        RETURN QUERY SELECT * FROM es_append_each(p_streams, p_expected, p_counts,
            p_event_ids, p_types, p_data, p_metadata, p_atomic);
        RETURN;
    END;

    -- Refusals, and accepted appends of no events, answer with the current version.
    RETURN QUERY
        SELECT r.ordinal::int, CASE WHEN r.ok THEN 0 ELSE 2 END, r.current_version,
               NULL::bigint, NULL::xid8
          FROM unnest(accepted, current_versions, p_counts) WITH ORDINALITY
               AS r(ok, current_version, event_count, ordinal)
         WHERE NOT r.ok OR r.event_count = 0;
    RETURN QUERY
        SELECT w.request, 0, w.version, w.position, pg_current_xact_id()
          FROM unnest(written_requests, written_versions, written_positions)
               AS w(request, version, position);
END;
$$;
"""

# CREATE OR REPLACE FUNCTION drops the settings steps 6 and 7 attached: attach them again.
_REATTACH_FAST_PATH_SETTINGS = """
ALTER FUNCTION es_append(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET enable_seqscan = off;
ALTER FUNCTION es_append(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET plan_cache_mode = force_generic_plan;
"""

# Step 9: the log alone. A stream's version is its highest event's, one backward step of
# the (stream, version) index, and that index's uniqueness is the check: two writers that
# read the same version cannot both insert the next one (the second waits for the first
# to commit, then fails with unique_violation). The `es_streams` rows (a row lock, an
# insert or update, their WAL) went, and so did the set-based PL/pgSQL function: the common
# batch is one plain statement (postgres/append.py, FAST_APPEND_SQL), whose plan the
# connection keeps. es_append_each stays for what that statement hands over (repeats, id
# conflicts, races, a stream named twice): request by request, each retried when a
# concurrent writer commits the same version or ids first. PostgreSQL CPU per event for
# group commits of 128 single-event appends, same-process interleaved calls: es_append
# 17.6-21.9 us, the plain statement 12.5-14.8 us, a bare INSERT of the rows 8.2-11.7 us.
_CREATE_LOG_ONLY_APPEND = """
DROP FUNCTION IF EXISTS es_append(text[], bigint[], int[], uuid[], text[], text[], text[],
                                  boolean);

CREATE OR REPLACE FUNCTION es_append_each(
    p_streams   text[],
    p_expected  bigint[],
    p_counts    int[],
    p_event_ids uuid[],
    p_types     text[],
    p_data      text[],
    p_metadata  text[],
    p_atomic    boolean
) RETURNS TABLE (
    out_request  int,
    out_outcome  int,
    out_version  bigint,
    out_position bigint,
    out_tx       xid8
)
LANGUAGE plpgsql AS $$
DECLARE
    request_count  int := coalesce(array_length(p_streams, 1), 0);
    request_index  int;
    first_event    int := 1;
    last_event     int;
    event_count    int;
    stream_name    text;
    expected       bigint;
    current_version bigint;
    stored_count   int;
    same_stream_count int;
    lowest_offset  bigint;
    highest_offset bigint;
    attempt        int;
BEGIN
    FOR request_index IN 1..request_count LOOP
        stream_name := p_streams[request_index];
        expected := p_expected[request_index];
        event_count := p_counts[request_index];
        last_event := first_event + event_count - 1;
        attempt := 0;
        -- Each pass reads afresh (READ COMMITTED: a statement sees every commit before
        -- it), so a writer that committed the same version or ids first is seen next time.
        LOOP
            attempt := attempt + 1;
            stored_count := 0;
            BEGIN
                IF event_count > 0 THEN
                    -- Idempotency: are these event ids stored already, as this very append?
                    SELECT count(*),
                           count(*) FILTER (WHERE e.stream = stream_name),
                           min(e.version - ids.ordinal),
                           max(e.version - ids.ordinal)
                      INTO stored_count, same_stream_count, lowest_offset, highest_offset
                      FROM unnest(p_event_ids[first_event:last_event]) WITH ORDINALITY
                           AS ids(event_id, ordinal)
                      JOIN es_events e ON e.event_id = ids.event_id;
                    IF stored_count > 0 THEN
                        IF stored_count = event_count AND same_stream_count = event_count
                           AND lowest_offset = highest_offset
                           AND (expected IN (-2, -4) OR expected = lowest_offset) THEN
                            RETURN QUERY
                                SELECT request_index, 1, e.version, e.position, e.tx_id
                                  FROM es_events e
                                 WHERE e.event_id = ANY (p_event_ids[first_event:last_event])
                                 ORDER BY e.version;
                            EXIT;
                        END IF;
                        IF NOT (stored_count = event_count AND same_stream_count = event_count
                                AND lowest_offset = highest_offset) THEN
                            IF p_atomic THEN
                                RAISE EXCEPTION USING ERRCODE = 'ES410',
                                    MESSAGE = 'event id conflict',
                                    DETAIL = json_build_object('stream', stream_name)::text;
                            END IF;
                            RETURN QUERY SELECT request_index, 3, NULL::bigint, NULL::bigint,
                                NULL::xid8;
                            EXIT;
                        END IF;
                        -- The same append at another expectation: a version conflict,
                        -- answered below against the stream's version.
                    END IF;
                END IF;

                SELECT coalesce(max(e.version), -1) INTO current_version
                  FROM es_events e WHERE e.stream = stream_name;

                IF NOT (expected = -2 OR expected = current_version
                        OR (expected = -4 AND current_version >= 0))
                   OR stored_count > 0 THEN
                    IF p_atomic THEN
                        RAISE EXCEPTION USING ERRCODE = 'ES409',
                            MESSAGE = 'wrong expected version',
                            DETAIL = json_build_object('stream', stream_name,
                                'expected', expected, 'actual', current_version)::text;
                    END IF;
                    RETURN QUERY SELECT request_index, 2, current_version, NULL::bigint,
                        NULL::xid8;
                ELSIF event_count = 0 THEN
                    RETURN QUERY SELECT request_index, 0, current_version, NULL::bigint,
                        NULL::xid8;
                ELSE
                    RETURN QUERY
                        WITH inserted AS (
                            INSERT INTO es_events (event_id, stream, version, type, data,
                                                   metadata)
                            SELECT n.event_id, stream_name, current_version + n.ordinal,
                                   n.event_type, n.event_data::json, n.event_metadata::json
                              FROM unnest(p_event_ids[first_event:last_event],
                                          p_types[first_event:last_event],
                                          p_data[first_event:last_event],
                                          p_metadata[first_event:last_event])
                                   WITH ORDINALITY
                                   AS n(event_id, event_type, event_data, event_metadata,
                                        ordinal)
                             ORDER BY n.ordinal
                            RETURNING es_events.version, es_events.position,
                                      es_events.tx_id
                        )
                        SELECT request_index, 0, inserted.version, inserted.position,
                               inserted.tx_id
                          FROM inserted;
                END IF;
                EXIT;
            EXCEPTION WHEN unique_violation THEN
                -- Another writer committed this version, or these ids, first. (Nothing
                -- of this pass was returned: its RETURN QUERY is the statement that failed.)
                IF attempt >= 100 THEN
                    RAISE;
                END IF;
            END;
        END LOOP;
        first_event := last_event + 1;
    END LOOP;
END;
$$;

ALTER FUNCTION es_append_each(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET enable_seqscan = off;
ALTER FUNCTION es_append_each(text[], bigint[], int[], uuid[], text[], text[], text[], boolean)
    SET plan_cache_mode = force_generic_plan;

DROP TABLE IF EXISTS es_streams;
"""

# (version, description, SQL). Never edit a shipped step: add a new one.
MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (1, "events, streams and checkpoints tables", _CREATE_TABLES),
    (2, "es_append batch append function", _CREATE_PER_REQUEST_FUNCTION.format(name="es_append")),
    (
        3,
        "es_append: set-based fast path, per-request es_append_each for the rest",
        _CREATE_PER_REQUEST_FUNCTION.format(name="es_append_each") + _CREATE_FAST_APPEND_FUNCTION,
    ),
    # Step 3 first shipped a fast path that looped over requests in PL/pgSQL (quadratic in
    # the batch size); both steps now create the set-based one, so any database gets it.
    (4, "es_append: checks and stream updates set-based", _CREATE_FAST_APPEND_FUNCTION),
    (5, "es_append*: plan every statement for its actual arrays", _FORCE_CUSTOM_PLANS),
    (6, "es_append*: look rows up through the indexes, never by scanning", _INDEX_LOOKUPS_ONLY),
    (
        7,
        "es_append*: plan once per session (index lookups only, so generic plans are safe)",
        _REUSE_PLANS,
    ),
    (
        8,
        "es_append: no lookups the inserts repeat (a subtransaction catches repeats, races)",
        _CREATE_APPEND_WITHOUT_ID_LOOKUP + _REATTACH_FAST_PATH_SETTINGS,
    ),
    (
        9,
        "the log alone: versions from es_events, one plain statement for the common batch",
        _CREATE_LOG_ONLY_APPEND,
    ),
)


async def migrate(connection: asyncpg.Connection) -> list[int]:
    """Apply the migrations this database lacks; return the versions applied now."""
    applied_now: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS es_schema_migrations (
                version     int         PRIMARY KEY,
                description text        NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM es_schema_migrations")
        }
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            await connection.execute(sql)
            await connection.execute(
                "INSERT INTO es_schema_migrations (version, description) VALUES ($1, $2)",
                version,
                description,
            )
            applied_now.append(version)
    return applied_now
