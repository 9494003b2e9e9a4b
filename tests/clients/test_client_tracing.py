"""A traced client carries the caller's trace to the service (W3C traceparent)."""

from __future__ import annotations

from canned_exchange import CannedExchange
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clients.client import ExchangeClient
from server.observability.tracing import configure_tracing, get_tracer, shutdown_tracing


async def test_traced_client_sends_the_callers_trace(canned_exchange: CannedExchange) -> None:
    assert configure_tracing("client-test", exporter=InMemorySpanExporter())
    try:
        async with ExchangeClient.connect(canned_exchange.target, traced=True) as client:
            with get_tracer().start_as_current_span("caller") as caller:
                await client.ping()
        trace_id = format(caller.get_span_context().trace_id, "032x")
        traceparent = canned_exchange.diagnostics.last_metadata["traceparent"]
        assert traceparent.split("-")[1] == trace_id
    finally:
        shutdown_tracing()


async def test_untraced_client_sends_no_trace(canned_exchange: CannedExchange) -> None:
    async with ExchangeClient.connect(canned_exchange.target) as client:
        with trace.get_tracer("t").start_as_current_span("caller"):
            await client.ping()
    assert "traceparent" not in canned_exchange.diagnostics.last_metadata
