"""OpenTelemetry tracing: setup, and trace context carried through event metadata.

Tracing is on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (or when a test passes its own
exporter): then `configure_tracing` installs an SDK tracer provider exporting OTLP/gRPC in
batches. Otherwise the OTel API stays on its no-op provider, every span is a shared
non-recording object, and `inject_trace_context()` returns `{}` after one attribute check,
so tracing off costs next to nothing.

A command's trace crosses the log: the command service stores `inject_trace_context()` in
the metadata of the event it appends (`traceparent`, and `tracestate` when present), and the
engine runner and projection builders open their spans with `span_from_metadata(...)` (or
`extract_trace_context(metadata)` as the parent context), so one trace shows the PlaceOrder
call, the append, the match and the view update.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "exchange"

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def tracing_enabled() -> bool:
    """True once `configure_tracing` installed a recording tracer provider."""
    return _provider is not None


def configure_tracing(service_name: str, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set or `exporter` is given.

    With `exporter` (tests: an InMemorySpanExporter) spans are exported synchronously; with
    the environment variable, batched over OTLP/gRPC (the exporter reads the standard
    `OTEL_EXPORTER_OTLP_*` variables). Calling it again adds the exporter to the provider
    already installed, since OTel allows one global provider per process. Returns whether
    tracing is on.
    """
    global _provider
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return tracing_enabled()
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(_provider)
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        # Imported here so the gRPC exporter machinery loads only when tracing is on.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporters (call on service shutdown)."""
    if _provider is not None:
        _provider.force_flush()
        _provider.shutdown()


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    """The tracer for `name` from the global provider (no-op while tracing is off)."""
    return trace.get_tracer(name)


def inject_trace_context() -> dict[str, str]:
    """W3C `traceparent` (and `tracestate`) of the current span, for event metadata; `{}`
    when there is no recording span (tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def extract_trace_context(metadata: Mapping[str, Any]) -> otel_context.Context:
    """The parent context stored in event metadata (an empty context when there is none)."""
    if "traceparent" not in metadata:
        return otel_context.Context()
    carrier = {key: str(metadata[key]) for key in ("traceparent", "tracestate") if key in metadata}
    return _propagator.extract(carrier)


@contextmanager
def span_from_metadata(
    name: str,
    metadata: Mapping[str, Any],
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """Start (and make current) a span named `name` whose parent is the trace context in
    `metadata`, e.g. the engine's `engine.match` span for one OrderPlaceRequested. While
    tracing is off this yields the no-op span without touching the metadata."""
    if _provider is None:
        yield trace.INVALID_SPAN
        return
    parent = extract_trace_context(metadata)
    with get_tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=dict(attributes or {})
    ) as span:
        yield span
