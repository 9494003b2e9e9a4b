"""The metric helpers record exactly what they say, under the names the dashboard and the
rules query (instrument `OPS-TEST` keeps these samples apart from the service tests')."""

from __future__ import annotations

import math
import urllib.request

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from server.eventstore.port import WrongExpectedVersion
from server.observability import metrics

SYMBOL = "OPS-TEST"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_engine_events_count_order_flow() -> None:
    names = [
        ("exchange_orders_accepted_total", {}),
        ("exchange_orders_filled_total", {}),
        ("exchange_orders_partially_filled_total", {}),
        ("exchange_orders_rejected_total", {"reason": "POST_ONLY_WOULD_TAKE"}),
        ("exchange_orders_cancelled_total", {"reason": "USER_REQUESTED"}),
        ("exchange_orders_expired_total", {}),
        ("exchange_orders_amended_total", {}),
        ("exchange_cancels_rejected_total", {"reason": "ORDER_CLOSED"}),
        ("exchange_amends_rejected_total", {"reason": "UNSPECIFIED"}),
        ("exchange_stops_triggered_total", {}),
        ("exchange_trades_total", {}),
        ("exchange_traded_volume_total", {}),
        ("exchange_traded_notional_total", {}),
    ]
    before = {name: sample(name, instrument=SYMBOL, **labels) for name, labels in names}
    metrics.record_engine_events(
        "IGNORED",
        [
            {"type": "OrderAccepted", "order_id": "a", "instrument": SYMBOL},
            {"type": "OrderAccepted", "order_id": "b", "instrument": SYMBOL},
            {
                "type": "TradeExecuted",
                "instrument": SYMBOL,
                "price": "100.50",
                "quantity": "0.25",
            },
            {"type": "TradeExecuted", "instrument": SYMBOL, "price": "101", "quantity": "1"},
            {"type": "OrderPartiallyFilled", "order_id": "a", "instrument": SYMBOL},
            {"type": "OrderFilled", "order_id": "b", "instrument": SYMBOL},
            {"type": "OrderRejected", "instrument": SYMBOL, "reason": "POST_ONLY_WOULD_TAKE"},
            {"type": "OrderCancelled", "instrument": SYMBOL, "reason": "USER_REQUESTED"},
            {"type": "OrderExpired", "instrument": SYMBOL},
            {"type": "OrderAmended", "instrument": SYMBOL},
            {"type": "CancelRejected", "instrument": SYMBOL, "reason": "ORDER_CLOSED"},
            {"type": "AmendRejected", "instrument": SYMBOL},
            {"type": "StopTriggered", "instrument": SYMBOL},
            {"type": "SomethingNew", "instrument": SYMBOL},
        ],
    )
    delta = {
        name: sample(name, instrument=SYMBOL, **labels) - before[name] for name, labels in names
    }
    assert delta == {
        "exchange_orders_accepted_total": 2,
        "exchange_orders_filled_total": 1,
        "exchange_orders_partially_filled_total": 1,
        "exchange_orders_rejected_total": 1,
        "exchange_orders_cancelled_total": 1,
        "exchange_orders_expired_total": 1,
        "exchange_orders_amended_total": 1,
        "exchange_cancels_rejected_total": 1,
        "exchange_amends_rejected_total": 1,
        "exchange_stops_triggered_total": 1,
        "exchange_trades_total": 2,
        "exchange_traded_volume_total": 1.25,
        "exchange_traded_notional_total": pytest.approx(100.5 * 0.25 + 101),
    }
    assert sample("exchange_last_trade_price", instrument=SYMBOL) == 101


def test_events_without_instrument_use_the_argument() -> None:
    before = sample("exchange_orders_accepted_total", instrument=SYMBOL)
    metrics.record_engine_events(SYMBOL, [{"type": "OrderAccepted", "order_id": "c"}])
    assert sample("exchange_orders_accepted_total", instrument=SYMBOL) == before + 1


def test_book_gauges() -> None:
    metrics.observe_book(SYMBOL, [("99.5", "2"), ("99", "1.5")], [("100.25", "0.5")])
    assert sample("exchange_book_best_bid", instrument=SYMBOL) == 99.5
    assert sample("exchange_book_best_ask", instrument=SYMBOL) == 100.25
    assert sample("exchange_book_spread", instrument=SYMBOL) == 0.75
    assert sample("exchange_book_depth", instrument=SYMBOL, side="bid") == 3.5
    assert sample("exchange_book_depth", instrument=SYMBOL, side="ask") == 0.5
    assert sample("exchange_book_levels", instrument=SYMBOL, side="bid") == 2
    assert sample("exchange_book_levels", instrument=SYMBOL, side="ask") == 1

    metrics.observe_book(SYMBOL, [("99.5", "2")], [])
    assert math.isnan(sample("exchange_book_best_ask", instrument=SYMBOL))
    assert math.isnan(sample("exchange_book_spread", instrument=SYMBOL))
    assert sample("exchange_book_levels", instrument=SYMBOL, side="ask") == 0
    assert sample("exchange_book_depth", instrument=SYMBOL, side="ask") == 0


def test_time_append_counts_events_and_errors() -> None:
    backend = "ops-test"
    with metrics.time_append(backend, 3):
        pass
    assert sample("exchange_eventstore_appended_events_total", backend=backend) == 3
    assert sample("exchange_eventstore_append_duration_seconds_count", backend=backend) == 1
    assert sample("exchange_eventstore_append_batch_events_sum", backend=backend) == 3
    # The error counter exists at zero from the first append.
    assert (
        REGISTRY.get_sample_value(
            "exchange_eventstore_append_errors_total",
            {"backend": backend, "error": "WrongExpectedVersion"},
        )
        == 0
    )
    with pytest.raises(WrongExpectedVersion), metrics.time_append(backend, 1):
        raise WrongExpectedVersion("order-1", -1, 0)
    errors = sample(
        "exchange_eventstore_append_errors_total", backend=backend, error="WrongExpectedVersion"
    )
    assert errors == 1
    assert sample("exchange_eventstore_appended_events_total", backend=backend) == 3


def test_time_append_is_a_span_when_tracing(spans: InMemorySpanExporter) -> None:
    with metrics.time_append("ops-test-traced", 2, stream="order-9"):
        pass
    (span,) = spans.get_finished_spans()
    assert span.name == "eventstore.append"
    assert dict(span.attributes or {}) == {
        "db.system": "ops-test-traced",
        "eventstore.events": 2,
        "eventstore.stream": "order-9",
    }


def test_lag_progress_queues_and_commands() -> None:
    metrics.observe_lag("projection:ops-test", 12, 0.5)
    assert sample("exchange_consumer_lag_events", consumer="projection:ops-test") == 12
    assert sample("exchange_consumer_lag_seconds", consumer="projection:ops-test") == 0.5
    metrics.record_consumer_processed("projection:ops-test", 5)
    assert sample("exchange_consumer_events_processed_total", consumer="projection:ops-test") == 5
    assert (
        sample("exchange_consumer_last_processed_timestamp_seconds", consumer="projection:ops-test")
        > 0
    )
    metrics.set_queue_length("ops-test", 7)
    assert sample("exchange_queue_length", queue="ops-test") == 7
    metrics.set_stream_subscribers("ops-test", 3)
    assert sample("exchange_stream_subscribers", stream="ops-test") == 3
    with metrics.track_command_in_flight("ops-test"):
        assert sample("exchange_commands_in_flight", command="ops-test") == 1
    assert sample("exchange_commands_in_flight", command="ops-test") == 0
    metrics.record_command("ops-test", "INVALID_ARGUMENT")
    assert sample("exchange_commands_total", command="ops-test", result="INVALID_ARGUMENT") == 1


def test_consumer_failures_stuck_and_resumed() -> None:
    consumer = "projection:ops-test"
    metrics.declare_consumer(consumer)
    assert (
        REGISTRY.get_sample_value("exchange_consumer_failures_total", {"consumer": consumer}) == 0
    )
    assert REGISTRY.get_sample_value("exchange_consumer_stuck", {"consumer": consumer}) == 0
    metrics.record_consumer_failure(consumer)
    metrics.record_consumer_failure(consumer)
    assert sample("exchange_consumer_failures_total", consumer=consumer) == 2
    first = {"event_type": "OrderPlaceRequested", "position": "7:1", "reason": "KeyError"}
    metrics.set_consumer_stuck(consumer, *first.values())
    assert sample("exchange_consumer_stuck", consumer=consumer) == 1
    assert sample("exchange_consumer_stuck_event", consumer=consumer, **first) == 1
    # Stuck somewhere else: one series, the new event's.
    second = {"event_type": "OrderAccepted", "position": "7:2", "reason": "ValueError"}
    metrics.set_consumer_stuck(consumer, *second.values())
    assert (
        REGISTRY.get_sample_value("exchange_consumer_stuck_event", {"consumer": consumer, **first})
        is None
    )
    assert sample("exchange_consumer_stuck_event", consumer=consumer, **second) == 1
    metrics.clear_consumer_stuck(consumer)
    assert sample("exchange_consumer_stuck", consumer=consumer) == 0
    assert (
        REGISTRY.get_sample_value("exchange_consumer_stuck_event", {"consumer": consumer, **second})
        is None
    )
    snapshot_failures = sample("exchange_engine_snapshot_failures_total")
    metrics.record_engine_snapshot_failure()
    assert sample("exchange_engine_snapshot_failures_total") == snapshot_failures + 1


def test_latency_histograms() -> None:
    metrics.observe_engine_command("ops-test", 0.00002)
    metrics.observe_place_to_ack(SYMBOL, 0.004)
    metrics.observe_place_to_fill_visible(SYMBOL, 0.02)
    assert sample("exchange_engine_command_duration_seconds_count", command="ops-test") == 1
    assert (
        sample("exchange_engine_command_duration_seconds_bucket", command="ops-test", le="2.5e-05")
        == 1
    )
    assert sample("exchange_place_to_ack_seconds_count", instrument=SYMBOL) == 1
    assert sample("exchange_place_to_fill_visible_seconds_sum", instrument=SYMBOL) == 0.02


def test_metrics_endpoint_serves_the_registry() -> None:
    port = metrics.start_metrics_server(0, addr="127.0.0.1")
    metrics.set_build_info("0.1.0", event_store="postgresql")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        body = reply.read().decode()
    assert 'exchange_build_info{event_store="postgresql",version="0.1.0"} 1.0' in body
    assert "# TYPE exchange_orders_placed_total counter" in body
    assert "process_resident_memory_bytes" in body


def test_money_results_count_holds_fees_per_asset_and_transfers() -> None:
    held = sample("exchange_funds_held_total", asset="USD")
    held_amount = sample("exchange_funds_held_amount_total", asset="USD")
    fees = sample("exchange_fees_collected_total", asset="USD")
    deposits = sample("exchange_transfers_total", kind="deposit", result="completed")
    refused = sample("exchange_transfers_total", kind="transfer", result="INSUFFICIENT_FUNDS")
    rejected = sample(
        "exchange_orders_rejected_total", instrument=SYMBOL, reason="INSUFFICIENT_FUNDS"
    )
    metrics.record_engine_events(
        "",
        [
            {"type": "FundsHeld", "asset": "USD", "amount": "100.25"},
            {
                "type": "TradeSettled",
                "quote_asset": "USD",
                "buyer_fee": "0.25",
                "seller_fee": "0.10",
            },
            {"type": "FundsDeposited", "asset": "USD", "amount": "5"},
            {"type": "TransferRejected", "reason": "INSUFFICIENT_FUNDS"},
            {"type": "OrderRejected", "instrument": SYMBOL, "reason": "INSUFFICIENT_FUNDS"},
        ],
    )
    assert sample("exchange_funds_held_total", asset="USD") == held + 1
    assert sample("exchange_funds_held_amount_total", asset="USD") == pytest.approx(
        held_amount + 100.25
    )
    assert sample("exchange_fees_collected_total", asset="USD") == pytest.approx(fees + 0.35)
    assert sample("exchange_transfers_total", kind="deposit", result="completed") == deposits + 1
    assert (
        sample("exchange_transfers_total", kind="transfer", result="INSUFFICIENT_FUNDS")
        == refused + 1
    )
    assert (
        sample("exchange_orders_rejected_total", instrument=SYMBOL, reason="INSUFFICIENT_FUNDS")
        == rejected + 1
    )
