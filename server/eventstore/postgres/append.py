"""Encoding appends for PostgreSQL and decoding the answers into results or errors.

One call carries many requests (a group commit, or the parts of an atomic multi-stream
append). Requests are sent sorted by stream name: concurrent calls that meet on a stream
wait for each other's new keys in the same order, and so cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import orjson

from server.eventstore.port import (
    AppendResult,
    EventIdConflict,
    EventStoreError,
    Expectation,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    WrongExpectedVersion,
)
from server.eventstore.postgres.schema import (
    EXPECT_ANY,
    EXPECT_NO_STREAM,
    EXPECT_STREAM_EXISTS,
    OUTCOME_ID_CONFLICT,
    OUTCOME_WRONG_VERSION,
    SQLSTATE_ID_CONFLICT,
    SQLSTATE_WRONG_VERSION,
)
from server.pg_pools import PgConnection

# The common batch in one plain statement (a prepared statement's plan is kept by the
# connection; a PL/pgSQL function's statements cost more to start and to run). Each
# request's version is its stream's highest event's; the unique (stream, version) index
# stops a writer that read the same version as a concurrent one: its insert waits for the
# other to commit, then fails with unique_violation, like an event id stored already.
# Either way the statement writes nothing and es_append_each settles the requests one by
# one. With $11 (atomic) a single refusal writes nothing at all. A refused request whose
# ids are stored may be the repeat of an earlier append: `stored` flags it for
# es_append_each, which answers repeats with the original result.
# No joins between the arrays: a generic plan guesses ten rows per unnest and would join
# them by nested loops, quadratic in the batch. Per-request values are read from arrays
# by the event's request number instead, and written rows are matched to their requests
# by stream name in Python (the last column; the first is then NULL).
FAST_APPEND_SQL = """
WITH current AS MATERIALIZED (
    SELECT r.ordinal::int AS ordinal, r.expected, r.event_count,
           coalesce(v.version, -1) AS current_version
      FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY
           AS r(stream, expected, event_count, ordinal)
      LEFT JOIN LATERAL (SELECT e.version FROM es_events e WHERE e.stream = r.stream
                          ORDER BY e.version DESC LIMIT 1) AS v ON true
), checked AS MATERIALIZED (
    SELECT r.ordinal, r.event_count, r.current_version,
           (r.expected = -2 OR r.expected = r.current_version
            OR (r.expected = -4 AND r.current_version >= 0)) AS accepted
      FROM current r
), requests AS MATERIALIZED (
    SELECT array_agg(c.current_version ORDER BY c.ordinal) AS versions,
           array_agg(c.accepted ORDER BY c.ordinal) AS accepted,
           bool_and(c.accepted) AS all_accepted
      FROM checked c
), inserted AS (
    INSERT INTO es_events (event_id, stream, version, type, data, metadata)
    SELECT n.event_id, n.stream, q.versions[n.request] + n.event_offset, n.event_type,
           n.event_data::json, n.event_metadata::json
      FROM requests q,
           unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
                  $10::int[]) WITH ORDINALITY
           AS n(event_id, event_type, event_data, event_metadata, stream, request,
                event_offset, ordinal)
     WHERE q.accepted[n.request] AND (q.all_accepted OR NOT $11::boolean)
     ORDER BY n.ordinal
    RETURNING es_events.stream, es_events.version, es_events.position
)
SELECT NULL::int, 0, i.version, i.position, pg_current_xact_id(), false, i.stream
  FROM inserted i
UNION ALL
SELECT c.ordinal, CASE WHEN c.accepted THEN 0 ELSE 2 END, c.current_version, NULL, NULL,
       NOT c.accepted AND c.ordinal = ANY (ARRAY(
           SELECT n.request
             FROM requests q, unnest($4::uuid[], $9::int[]) AS n(event_id, request)
            WHERE NOT q.accepted[n.request]
              AND EXISTS (SELECT 1 FROM es_events e WHERE e.event_id = n.event_id))),
       NULL
  FROM checked c
 WHERE NOT c.accepted OR c.event_count = 0
"""

# Request by request, with the same answers (see schema.py, es_append_each).
EACH_APPEND_SQL = """
SELECT out_request, out_outcome, out_version, out_position, out_tx
  FROM es_append_each($1::text[], $2::bigint[], $3::int[], $4::uuid[], $5::text[],
                      $6::text[], $7::text[], $8::boolean)
"""


def expectation_code(expected: Expectation) -> int:
    """The int es_append takes for an expectation; exact versions must be >= 0."""
    # Identity checks, not a dict of members: an Enum's __hash__ is Python code, and
    # this runs once per append.
    if type(expected) is int and expected >= 0:
        return expected
    if expected is ExpectedVersion.ANY:
        return EXPECT_ANY
    if expected is ExpectedVersion.NO_STREAM:
        return EXPECT_NO_STREAM
    if expected is ExpectedVersion.STREAM_EXISTS:
        return EXPECT_STREAM_EXISTS
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return int(expected)  # an int subclass, e.g. an IntEnum
    raise ValueError(f"expected version must be an ExpectedVersion or int >= 0: {expected!r}")


class AppendRequest(msgspec.Struct, frozen=True, gc=False):
    """One stream append, its JSON already encoded for the database. (A Struct: built
    once per append, several times cheaper than a frozen dataclass.)"""

    stream: str
    expected: Expectation
    expected_code: int
    events: tuple[NewEvent, ...]  # a copy: the caller's list may change while queued
    data: list[str]
    metadata: list[str]

    @property
    def event_ids(self) -> list[UUID]:
        return [event.event_id for event in self.events]


def encode_request(stream: str, events: Sequence[NewEvent], expected: Expectation) -> AppendRequest:
    """Validate and serialise an append (JSON is encoded here, in the caller's task)."""
    if not stream:
        raise ValueError("stream name must not be empty")
    dumps = orjson.dumps
    return AppendRequest(
        stream,
        expected,
        expectation_code(expected),
        tuple(events),
        [dumps(event.data).decode() for event in events],
        [dumps(event.metadata).decode() for event in events],
    )


AppendOutcome = AppendResult | EventStoreError


async def call_append(
    connection: PgConnection, requests: Sequence[AppendRequest], atomic: bool
) -> list[AppendOutcome]:
    """Append all `requests` in one transaction; one result or error per request, in order.

    With `atomic`, a refused request raises its error and nothing at all is written.
    """
    if len(requests) == 1:
        send_order: list[int] = [0]
        sent = list(requests)
    else:
        send_order = sorted(range(len(requests)), key=lambda index: requests[index].stream)
        sent = [requests[index] for index in send_order]
    rows_by_request = await _append_rows(connection, sent, atomic)
    outcomes: list[AppendOutcome] = [EventStoreError("no answer")] * len(requests)
    for sent_index, request_rows in enumerate(rows_by_request):
        outcomes[send_order[sent_index]] = _outcome(sent[sent_index], request_rows)
    return outcomes


_Row = asyncpg.Record


async def _append_rows(
    connection: PgConnection, sent: list[AppendRequest], atomic: bool
) -> list[list[_Row]]:
    """The answer rows of each request of `sent`, in its order."""
    if len({request.stream for request in sent}) < len(sent):
        return await _append_each(connection, sent, atomic)
    if all(len(request.events) == 1 for request in sent):
        event_streams = [request.stream for request in sent]
        event_request: list[int] = list(range(1, len(sent) + 1))
        event_offset: list[int] = [1] * len(sent)
    else:
        event_streams, event_request, event_offset = [], [], []
        for number, request in enumerate(sent, 1):
            event_streams += [request.stream] * len(request.events)
            event_request += [number] * len(request.events)
            event_offset += range(1, len(request.events) + 1)
    try:
        rows = await connection.fetch(
            FAST_APPEND_SQL,
            *_request_arrays(sent),
            event_streams,
            event_request,
            event_offset,
            atomic,
        )
    except asyncpg.UniqueViolationError:  # a repeat, an id conflict, or a racing writer
        return await _append_each(connection, sent, atomic)

    rows_by_request: list[list[_Row]] = [[] for _ in sent]
    place = {request.stream: index for index, request in enumerate(sent)}
    refused: list[int] = []
    maybe_repeats: list[int] = []
    for row in rows:
        if row[0] is None:  # a written event
            rows_by_request[place[row[6]]].append(row)
            continue
        rows_by_request[row[0] - 1].append(row)
        if row[1] == OUTCOME_WRONG_VERSION:
            refused.append(row[0] - 1)
            if row[5]:
                maybe_repeats.append(row[0] - 1)
    if atomic and refused:  # nothing was written
        if maybe_repeats:
            return await _append_each(connection, sent, atomic)
        first = min(refused)
        request = sent[first]
        raise WrongExpectedVersion(request.stream, request.expected, rows_by_request[first][0][2])
    if maybe_repeats:  # rare: ask again for those requests alone (answers, no writes)
        again = await _append_each(connection, [sent[index] for index in maybe_repeats], False)
        for index, request_rows in zip(maybe_repeats, again, strict=True):
            rows_by_request[index] = request_rows
    return rows_by_request


async def _append_each(
    connection: PgConnection, sent: list[AppendRequest], atomic: bool
) -> list[list[_Row]]:
    try:
        rows = await connection.fetch(EACH_APPEND_SQL, *_request_arrays(sent), atomic)
    except asyncpg.PostgresError as error:
        raise _refusal_from_error(error, sent) from None
    rows_by_request: list[list[_Row]] = [[] for _ in sent]
    for row in rows:
        rows_by_request[row[0] - 1].append(row)
    return rows_by_request


def _request_arrays(sent: list[AppendRequest]) -> tuple[list[Any], ...]:
    """Streams, expectations, event counts, then the events' ids, types, data, metadata."""
    return (
        [request.stream for request in sent],
        [request.expected_code for request in sent],
        [len(request.events) for request in sent],
        [event.event_id for request in sent for event in request.events],
        [event.type for request in sent for event in request.events],
        [data for request in sent for data in request.data],
        [metadata for request in sent for metadata in request.metadata],
    )


def _outcome(request: AppendRequest, rows: list[_Row]) -> AppendOutcome:
    if not rows:
        return EventStoreError(f"no append answer for stream {request.stream!r}")
    first = rows[0]
    outcome = first[1]
    if outcome == OUTCOME_WRONG_VERSION:
        return WrongExpectedVersion(request.stream, request.expected, first[2])
    if outcome == OUTCOME_ID_CONFLICT:
        return EventIdConflict(request.stream, request.event_ids)
    if first[3] is None:  # an append of no events: the row carries the current version
        current_version: int = first[2]
        return AppendResult(request.stream, current_version + 1, current_version, ())
    if len(rows) == 1:  # the usual single event: no sorting, one position
        return AppendResult(request.stream, first[2], first[2], (LogPosition(first[4], first[3]),))
    rows.sort(key=lambda row: row[2])
    return AppendResult(
        request.stream,
        rows[0][2],
        rows[-1][2],
        tuple([LogPosition(row[4], row[3]) for row in rows]),
    )


def _refusal_from_error(
    error: asyncpg.PostgresError, requests: Sequence[AppendRequest]
) -> Exception:
    """Translate es_append_each's atomic-mode refusals; pass any other error through."""
    sqlstate: str | None = error.sqlstate
    if sqlstate not in (SQLSTATE_WRONG_VERSION, SQLSTATE_ID_CONFLICT):
        passed_through: Exception = error
        return passed_through
    detail = orjson.loads(getattr(error, "detail", None) or "{}")
    stream = detail.get("stream", "")
    request = next((r for r in requests if r.stream == stream), None)
    if sqlstate == SQLSTATE_ID_CONFLICT:
        return EventIdConflict(stream, request.event_ids if request else ())
    actual = detail.get("actual")
    return WrongExpectedVersion(
        stream,
        request.expected if request else detail.get("expected"),
        -1 if actual is None else int(actual),
    )
