"""Trace context crosses the log and gRPC: a span opened from event metadata joins the trace
that wrote the event, a traced gRPC call continues the caller's trace on the server, log
lines carry the trace and span ids, and with tracing off nothing is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from ops_queries import ROOT

from server.observability.interceptors import client_interceptors, server_interceptors
from server.observability.tracing import (
    extract_trace_context,
    get_tracer,
    inject_trace_context,
    record_batch_spans,
    sampler_from_environment,
    span_from_metadata,
    tracing_enabled,
)

SERVICE = "test.v1.Traced"


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )


def test_tracing_off_records_nothing() -> None:
    result = _run_python(
        """
        from opentelemetry import trace
        from server.observability import tracing
        from server.observability.interceptors import server_interceptors, MetricsInterceptor
        assert tracing.configure_tracing("exchange") is False
        assert not tracing.tracing_enabled()
        with tracing.get_tracer().start_as_current_span("place") as span:
            assert not span.is_recording()
            assert tracing.inject_trace_context() == {}
        parent = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        with tracing.span_from_metadata("engine", parent) as span:
            assert span is trace.INVALID_SPAN
        assert [type(i) for i in server_interceptors()] == [MetricsInterceptor]
        assert tracing.record_batch_spans("projection.orders", [parent], 0) == 0
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_a_span_from_event_metadata_joins_the_writers_trace(
    spans: InMemorySpanExporter,
) -> None:
    with get_tracer().start_as_current_span("PlaceOrder", kind=SpanKind.SERVER) as place:
        metadata = {"correlation_id": "c-1", **inject_trace_context()}
    assert set(metadata) == {"correlation_id", "traceparent"}
    trace_id = place.get_span_context().trace_id
    version, traced_id, parent_id, flags = metadata["traceparent"].split("-")
    assert (version, traced_id, parent_id) == (
        "00",
        f"{trace_id:032x}",
        f"{place.get_span_context().span_id:016x}",
    )
    assert int(flags, 16) & 1 == 1  # sampled

    with (
        span_from_metadata("engine.match", metadata, attributes={"order_id": "o-1"}) as match,
        get_tracer().start_as_current_span("eventstore.append"),
    ):
        pass
    with span_from_metadata("projection.orders", metadata):
        pass

    finished = {span.name: span for span in spans.get_finished_spans()}
    assert set(finished) == {"PlaceOrder", "engine.match", "eventstore.append", "projection.orders"}
    assert {span.context.trace_id for span in finished.values()} == {trace_id}
    place_id = place.get_span_context().span_id
    assert finished["engine.match"].parent.span_id == place_id
    assert finished["projection.orders"].parent.span_id == place_id
    assert finished["eventstore.append"].parent.span_id == match.get_span_context().span_id
    assert finished["engine.match"].kind == SpanKind.CONSUMER
    assert finished["engine.match"].attributes == {"order_id": "o-1"}


def test_metadata_without_trace_context_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    assert trace.get_current_span(extract_trace_context({})) is trace.INVALID_SPAN
    with span_from_metadata("engine.match", {"correlation_id": "c-2"}) as span:
        assert span.is_recording()
    (finished,) = spans.get_finished_spans()
    assert finished.parent is None


def test_a_batch_joins_every_trace_it_applied(spans: InMemorySpanExporter) -> None:
    carriers = []
    for name in ("PlaceOrder-1", "PlaceOrder-2"):
        with get_tracer().start_as_current_span(name):
            carriers.append(inject_trace_context())
    started = time.time_ns()
    # Two events of the first trace, one of the second, one without trace context.
    batch = [carriers[0], carriers[0], carriers[1], {"correlation_id": "c-3"}]
    assert record_batch_spans("projection.orders", batch, started, {"events": 4}) == 2

    finished = spans.get_finished_spans()
    places = {span.name: span for span in finished if span.name.startswith("PlaceOrder")}
    projections = [span for span in finished if span.name == "projection.orders"]
    assert sorted((span.context.trace_id, span.parent.span_id) for span in projections) == sorted(
        (place.context.trace_id, place.context.span_id) for place in places.values()
    )
    for span in projections:
        assert span.kind == SpanKind.CONSUMER
        assert span.start_time == started
        assert span.end_time >= started
        assert dict(span.attributes or {}) == {"events": 4}


async def _handle(request: bytes, context: Any) -> bytes:
    # What a command servicer does: put the current trace in the appended event's metadata.
    return json.dumps(inject_trace_context()).encode()


@pytest.fixture
async def traced_channel(span_exporter: InMemorySpanExporter) -> AsyncIterator[grpc.aio.Channel]:
    assert tracing_enabled()
    server = grpc.aio.server(interceptors=server_interceptors())
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Place": grpc.unary_unary_rpc_method_handler(_handle)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=client_interceptors()
    ) as channel:
        yield channel
    await server.stop(None)


async def test_a_grpc_call_continues_the_callers_trace(
    traced_channel: grpc.aio.Channel, spans: InMemorySpanExporter
) -> None:
    with get_tracer().start_as_current_span("client-work") as client_work:
        reply = await traced_channel.unary_unary(f"/{SERVICE}/Place")(b"")
    metadata = json.loads(reply)
    trace_id = client_work.get_span_context().trace_id
    assert metadata["traceparent"].startswith(f"00-{trace_id:032x}-")

    by_kind = {span.kind: span for span in spans.get_finished_spans()}
    assert {span.context.trace_id for span in by_kind.values()} == {trace_id}
    server_span = by_kind[SpanKind.SERVER]
    assert server_span.name == f"/{SERVICE}/Place"
    assert server_span.parent.span_id == by_kind[SpanKind.CLIENT].context.span_id
    # The event metadata points at the server span, so the engine's span hangs below it.
    assert metadata["traceparent"].split("-")[2] == f"{server_span.context.span_id:016x}"


def test_json_logs_carry_trace_and_span_ids() -> None:
    result = _run_python(
        """
        import logging
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from server.observability.logging import configure_logging, get_logger
        from server.observability.tracing import configure_tracing, get_tracer
        configure_tracing("exchange", exporter=InMemorySpanExporter())
        configure_logging("INFO", json=True)
        log = get_logger("engine", instrument="BTC-USD")
        with get_tracer().start_as_current_span("engine.match") as span:
            log.info("order accepted", order_id="o-1")
            print("SPAN", format(span.get_span_context().trace_id, "032x"),
                  format(span.get_span_context().span_id, "016x"), flush=True)
        log.debug("hidden")
        logging.getLogger("asyncpg").warning("pool %s", "closed")
        """,
        LOG_LEVEL="DEBUG",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    span_line = next(line for line in lines if line.startswith("SPAN "))
    _, trace_id, span_id = span_line.split()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) == 2
    accepted, stdlib = records
    assert accepted["event"] == "order accepted"
    assert accepted["level"] == "info"
    assert accepted["logger"] == "engine"
    assert (accepted["order_id"], accepted["instrument"]) == ("o-1", "BTC-USD")
    assert (accepted["trace_id"], accepted["span_id"]) == (trace_id, span_id)
    assert accepted["timestamp"].endswith("Z")
    assert (stdlib["event"], stdlib["logger"], stdlib["level"]) == (
        "pool closed",
        "asyncpg",
        "warning",
    )
    assert "trace_id" not in stdlib


def test_the_sampler_follows_the_standard_environment_variables() -> None:
    ratio_on_root = sampler_from_environment(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    )
    assert "TraceIdRatioBased{0.25}" in ratio_on_root.get_description()
    assert sampler_from_environment({}).get_description().startswith("ParentBased{root:AlwaysOn")
    assert sampler_from_environment({"OTEL_TRACES_SAMPLER": "always_off"}).get_description() == (
        "AlwaysOffSampler"
    )
    for bad in (
        {"OTEL_TRACES_SAMPLER": "sometimes"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
    ):
        with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER"):
            sampler_from_environment(bad)


def test_a_zero_ratio_records_no_trace_and_its_children_follow() -> None:
    result = _run_python(
        """
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from server.observability.tracing import (
            configure_tracing, get_tracer, inject_trace_context, span_from_metadata)
        exporter = InMemorySpanExporter()
        assert configure_tracing("exchange", exporter=exporter)
        with get_tracer().start_as_current_span("PlaceOrder") as root:
            assert not root.is_recording()
            metadata = inject_trace_context()
        with span_from_metadata("engine.match", metadata) as engine_span:
            assert not engine_span.is_recording()  # the unsampled decision travels on
        print("SPANS", len(exporter.get_finished_spans()))
        """,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    assert result.returncode == 0, result.stderr
    assert "SPANS 0" in result.stdout
