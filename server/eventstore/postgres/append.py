"""Encoding appends for `es_append` and decoding its answer into results or errors.

One call carries many requests (a group commit, or the parts of an atomic multi-stream
append). Requests are sent sorted by stream name so concurrent calls lock stream rows in
the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Sequence
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

APPEND_SQL = """
SELECT out_request, out_outcome, out_version, out_position, out_tx
  FROM es_append($1::text[], $2::bigint[], $3::int[], $4::uuid[], $5::text[], $6::text[],
                 $7::text[], $8::boolean)
"""

# The same answers from the per-request function. es_append's set-based path starts up
# about nine statements' plans per call, es_append_each about four: for a lone request of
# a few events that start-up is most of the cost (PostgreSQL CPU per call, measured: one
# event ~530 -> ~350 us, ten ~890 -> ~640 us; about even at 100 events; calls of two
# requests or more are as cheap or cheaper set-based).
APPEND_ONE_SQL = APPEND_SQL.replace("es_append(", "es_append_each(")
_SET_BASED_FROM_EVENTS = 100


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
    connection: asyncpg.Connection, requests: Sequence[AppendRequest], atomic: bool
) -> list[AppendOutcome]:
    """Run es_append once for all `requests`; one result or error per request, in order.

    With `atomic`, a refused request raises its error and nothing at all is written.
    """
    sql = APPEND_SQL
    if len(requests) == 1:
        send_order: list[int] = [0]
        sent = list(requests)
        if len(sent[0].events) < _SET_BASED_FROM_EVENTS:
            sql = APPEND_ONE_SQL
    else:
        send_order = sorted(range(len(requests)), key=lambda index: requests[index].stream)
        sent = [requests[index] for index in send_order]
    try:
        rows = await connection.fetch(
            sql,
            [request.stream for request in sent],
            [request.expected_code for request in sent],
            [len(request.events) for request in sent],
            [event.event_id for request in sent for event in request.events],
            [event.type for request in sent for event in request.events],
            [data for request in sent for data in request.data],
            [metadata for request in sent for metadata in request.metadata],
            atomic,
        )
    except asyncpg.PostgresError as error:
        raise _refusal_from_error(error, requests) from None

    rows_by_request: list[list[asyncpg.Record]] = [[] for _ in sent]
    for row in rows:
        rows_by_request[row[0] - 1].append(row)
    outcomes: list[AppendOutcome] = [EventStoreError("no answer")] * len(requests)
    for sent_index, request_rows in enumerate(rows_by_request):
        outcomes[send_order[sent_index]] = _outcome(sent[sent_index], request_rows)
    return outcomes


def _outcome(request: AppendRequest, rows: list[asyncpg.Record]) -> AppendOutcome:
    if not rows:
        return EventStoreError(f"es_append gave no answer for stream {request.stream!r}")
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
    """Translate es_append's atomic-mode refusals; pass any other error through."""
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
