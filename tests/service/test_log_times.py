"""The log's one time format (server/streams.py), which every stored time goes through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from server.log_contract.layout import format_time, parse_time


def test_times_are_utc_with_six_fraction_digits_and_a_z() -> None:
    assert (
        format_time(datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)) == "2026-03-04T05:06:07.000089Z"
    )
    assert format_time(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) == "2026-03-04T05:06:07.000000Z"
    five_hours_east = timezone(timedelta(hours=5))
    assert format_time(datetime(2026, 1, 1, 2, tzinfo=five_hours_east)) == (
        "2025-12-31T21:00:00.000000Z"
    )
    assert format_time(datetime(5, 1, 1, tzinfo=UTC)) == "0005-01-01T00:00:00.000000Z"


def test_a_formatted_time_parses_back_to_the_same_instant() -> None:
    moment = datetime(2026, 12, 1, 17, 30, 0, 123456, tzinfo=UTC)
    assert parse_time(format_time(moment)) == moment
    assert parse_time("2026-12-01T18:30:00.123456+01:00") == moment
