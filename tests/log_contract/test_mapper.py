"""The log's contract: every record type decodes from real log rows, round-trips, and an
older version is upcast on read; an unknown type fails loudly with its name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.orders import OrderType, Side, TimeInForce
from server.log_contract import mapper
from server.log_contract.mapper import UnreadableRecord, decode_data, encode
from server.log_contract.records import (
    RECORD_TYPES,
    OrderAmendRequested,
    OrderPlaceRequested,
    TradeExecuted,
)

# Rows of a log written by the service before the contract existed (version 1, no
# schema_version in metadata): every record type appears at least once.
FIXTURE = Path(__file__).parent / "fixtures" / "log_v1.jsonl"


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_the_fixture_holds_every_record_type() -> None:
    assert {row["type"] for row in _rows()} == set(RECORD_TYPES)


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row["type"])
def test_every_real_row_decodes_and_round_trips(row: dict[str, Any]) -> None:
    record = decode_data(row["type"], row["data"], row["metadata"])
    assert type(record).__name__ == row["type"]
    event_type, data, metadata = encode(record)
    assert (event_type, metadata) == (row["type"], {})
    assert decode_data(event_type, data) == record
    assert set(data) == set(row["data"]) | _defaults_written(record, row["data"])


def _defaults_written(record: Any, original: dict[str, Any]) -> set[str]:
    """Fields the old writer left out when unset and the encoder writes with the default."""
    return {name for name in record.__struct_fields__ if name not in original}


def test_a_place_request_decodes_to_typed_fields() -> None:
    row = next(r for r in _rows() if r["type"] == "OrderPlaceRequested")
    record = decode_data(row["type"], row["data"])
    assert isinstance(record, OrderPlaceRequested)
    assert isinstance(record.quantity, Decimal)
    assert isinstance(record.side, Side)
    assert record.requested_at.tzinfo is not None


def test_decimals_and_times_are_written_plain() -> None:
    trade = TradeExecuted(
        instrument="X",
        trade_id="X-1",
        price=Decimal("0.00000005"),
        quantity=Decimal("1.50"),
        maker_order_id="m",
        taker_order_id="t",
        taker_side=Side.BUY,
        maker_user_id="a",
        taker_user_id="b",
        executed_at=datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC),
    )
    _, data, _ = encode(trade)
    assert (data["type"], data["price"], data["quantity"], data["executed_at"]) == (
        "TradeExecuted",
        "0.00000005",
        "1.50",
        "2026-01-01T00:00:00.250000Z",
    )


def test_an_unknown_type_fails_loudly_with_its_name() -> None:
    with pytest.raises(UnreadableRecord) as raised:
        decode_data("OrderTeleported", {})
    assert raised.value.event_type == "OrderTeleported"
    assert "OrderTeleported" in str(raised.value)


def test_data_that_does_not_fit_its_type_is_unreadable_naming_the_field() -> None:
    with pytest.raises(UnreadableRecord) as raised:
        decode_data("ClockTicked", {"now": "yesterday"})
    assert "now" in raised.value.reason


def test_a_newer_version_than_the_code_knows_is_unreadable() -> None:
    with pytest.raises(UnreadableRecord, match="newer"):
        decode_data("ClockTicked", {"now": "2026-01-01T00:00:00Z"}, {"schema_version": "2"})


def test_an_older_version_is_upcast_on_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Say version 2 of OrderAmendRequested always carries a price: a version-1 row goes
    through the upcaster once; a version-2 row is read as it is."""
    monkeypatch.setitem(mapper.SCHEMA_VERSIONS, "OrderAmendRequested", 2)
    old = {
        "op": "amend",
        "order_id": "o1",
        "instrument": "BTC-USD",
        "quantity": "2.0",
        "user_id": "alice",
        "requested_at": "2026-01-01T00:00:00Z",
    }
    calls: list[dict[str, Any]] = []

    def counting(data: dict[str, Any]) -> dict[str, Any]:
        calls.append(data)
        return {**data, "price": "1.00"}

    monkeypatch.setitem(mapper.UPCASTERS, ("OrderAmendRequested", 1), counting)
    upcast = decode_data("OrderAmendRequested", old)
    assert isinstance(upcast, OrderAmendRequested)
    assert (upcast.quantity, upcast.price, len(calls)) == (Decimal("2.0"), Decimal("1.00"), 1)
    _, data, metadata = encode(upcast)
    assert metadata == {"schema_version": "2"}
    assert decode_data("OrderAmendRequested", data, metadata) == upcast
    assert len(calls) == 1


def test_enum_fields_take_only_the_domain_names() -> None:
    row = next(r for r in _rows() if r["type"] == "OrderPlaceRequested")
    record = decode_data(row["type"], row["data"])
    assert isinstance(record, OrderPlaceRequested)
    assert record.type in set(OrderType) and record.time_in_force in set(TimeInForce)
    with pytest.raises(UnreadableRecord):
        decode_data(row["type"], {**row["data"], "side": "UP"})


def test_the_engine_results_have_the_domain_events_fields() -> None:
    """The records of the engine's results and the domain's events cannot drift apart."""
    from typing import get_args

    from domain.events import Event
    from server.engine_inputs import UNRECORDED_EVENT_TYPES
    from server.log_contract.records import RESULT_RECORDS

    recorded = {
        cls.__name__: cls
        for cls in get_args(Event)
        if cls.__name__ not in UNRECORDED_EVENT_TYPES and cls.__name__ != "InstrumentAdded"
    }
    assert {cls.__name__ for cls in RESULT_RECORDS} == set(recorded)
    for cls in RESULT_RECORDS:
        assert set(cls.__struct_fields__) == set(recorded[cls.__name__].__struct_fields__)


def test_engine_results_encoded_by_the_domain_codec_decode() -> None:
    from domain.codec import event_to_dict
    from domain.engine import MatchingEngine
    from domain.instruments import Instrument
    from server.engine_inputs import UNRECORDED_EVENT_TYPES

    btc = Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001"))
    engine = MatchingEngine([btc])
    from domain.commands import PlaceOrder

    events = [
        *engine.handle(PlaceOrder("s", "alice", "BTC-USD", Side.SELL, OrderType.LIMIT, 10, 100)),
        *engine.handle(PlaceOrder("b", "bob", "BTC-USD", Side.BUY, OrderType.LIMIT, 4, 101)),
    ]
    for event in events:
        data = event_to_dict(event, {"BTC-USD": btc})
        if data["type"] in UNRECORDED_EVENT_TYPES:
            continue
        record = decode_data(data["type"], data)
        encoded = encode(record)[1]
        # What the runner writes today, times aside: the engine's codec writes the
        # replayer's format (fraction only when there is one), the mapper the log's.
        assert {k: v for k, v in encoded.items() if not k.endswith("_at")} == {
            k: v for k, v in data.items() if not k.endswith("_at")
        }
        assert all(encoded[k].endswith(".000000Z") for k in encoded if k.endswith("_at"))


def test_the_contract_document_names_every_record_type() -> None:
    document = (Path(__file__).parents[2] / "docs" / "log-contract.md").read_text()
    assert [name for name in RECORD_TYPES if f"| `{name}`" not in document] == []
