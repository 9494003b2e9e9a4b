"""The PostgreSQL event store's schema, applied by migrations that run on open.

Each migration runs once, recorded in `es_schema_migrations`; all of them run in one
transaction under a transaction-scoped advisory lock, so opening the store twice, or from
two processes at once, is safe. `MIGRATIONS` starts with one baseline (step 9, the schema
the first nine steps ended with; see docs/eventstore.md); a later change is a new step after
it, never an edit of a step a database may have run.

Layout:
- `es_events`: the log. `tx_id` (xid8, the writer's transaction id) and `position` (an
  identity) order it; readers only read rows whose `tx_id` is below the oldest transaction
  still running, so a transaction that commits late can never be skipped.
- A stream's version is its highest event's; the unique (stream, version) index is what
  stops two writers from taking the same one.
- Appends: one plain statement per batch (postgres/append.py); `es_append_each(...)`
  settles what that statement hands over (repeats, races) request by request.
"""

from __future__ import annotations

from typing import Final

from server.pg_pools import PgConnection

# Any constant unique to this schema: pg_advisory_xact_lock takes a bigint key.
MIGRATION_LOCK_KEY: Final = 0x45_56_45_4E_54_53  # "EVENTS"

# Expected-version codes the append statement and es_append_each take (exact versions are
# passed as themselves).
EXPECT_ANY: Final = -2
EXPECT_NO_STREAM: Final = -1
EXPECT_STREAM_EXISTS: Final = -4

# Outcome codes, one per request (per event row when events are returned).
OUTCOME_WRITTEN: Final = 0
OUTCOME_DUPLICATE: Final = 1
OUTCOME_WRONG_VERSION: Final = 2
OUTCOME_ID_CONFLICT: Final = 3

# SQLSTATEs es_append_each raises in atomic mode (class "ES" is not used by PostgreSQL).
SQLSTATE_WRONG_VERSION: Final = "ES409"
SQLSTATE_ID_CONFLICT: Final = "ES410"

NOTIFY_CHANNEL: Final = "es_events_appended"

# The baseline. es_append_each walks a batch's requests one by one and answers each: one row
# per event written (or found, for an idempotent repeat), or one row with the outcome and
# the stream's actual version when the request is refused; with p_atomic a refusal raises
# instead, rolling back the whole call. It retries a request when a concurrent writer
# commits the same version or ids first. Its SET clauses are part of its definition: a
# later CREATE OR REPLACE must repeat them (test_the_append_function_keeps_its_plan_settings).
_BASELINE = """
CREATE TABLE es_events (
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

CREATE TABLE es_checkpoints (
    name       text        PRIMARY KEY,
    position   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION es_append_each(
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
LANGUAGE plpgsql
-- Index lookups only, so a plan made once per session (generic) is safe.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
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
"""

# (version, description, SQL). Never edit a step a database may have run: add a new one.
# The baseline is numbered 9 because it stands for steps 1-9 (squashed before anything
# shipped): a development database those steps built has this very schema and records 9,
# so it skips the baseline and takes any later step like a new database does.
MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (9, "baseline: es_events, es_checkpoints, es_append_each", _BASELINE),
    # The consumers keep their positions beside their results (projection_checkpoints, the
    # engine's progress events): nothing read or wrote this table.
    (10, "drop es_checkpoints", "DROP TABLE IF EXISTS es_checkpoints"),
)


async def migrate(connection: PgConnection) -> list[int]:
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
