"""OpenTelemetry tracing: setup, and trace context carried through event metadata.

Tracing is on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (or when a test passes its own
exporter): then `configure_tracing` installs an SDK tracer provider exporting OTLP/gRPC in
batches. Otherwise the OTel API stays on its no-op provider, every span is a shared
non-recording object, `inject_trace_context()` returns `{}` after one attribute check and
`server_interceptors()` adds no tracing interceptor, so tracing off costs next to nothing.
`shutdown_tracing()` turns it off again (the provider then drops every span). Which traces
are kept follows the standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default
`parentbased_always_on`: every trace).

A command's trace crosses the log: the command service stores `inject_trace_context()` in
the metadata of the event it appends (`traceparent`, and `tracestate` when present), and the
engine runner and projection builders open their spans with `span_from_metadata(...)` (or
`extract_trace_context(metadata)` as the parent context), so one trace shows the PlaceOrder
call, the append, the match and the view update.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanKind, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

TRACER_NAME = "exchange"

_propagator = TraceContextTextMapPropagator()


class _SwitchSampler(Sampler):
    """Samples like ParentBased(ALWAYS_ON) while tracing is on and drops every span while it
    is off, so turning tracing off at run time (tests) leaves only non-recording spans."""

    def __init__(self) -> None:
        self.on = False
        self.inner: Sampler = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if not self.on:
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "SwitchSampler"


class _ExportRouter(SpanProcessor):
    """The one span processor installed in the global provider; exporters come and go
    behind it (OTel allows one global provider per process and no processor removal)."""

    def __init__(self) -> None:
        self.processors: list[SpanProcessor] = []

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()
        self.processors = []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self.processors)


def sampler_from_environment(environ: Mapping[str, str] = os.environ) -> Sampler:
    """The sampler `OTEL_TRACES_SAMPLER` names (the OpenTelemetry SDK's standard values; the
    ratio ones read `OTEL_TRACES_SAMPLER_ARG`, default 1.0). Unset: parentbased_always_on.
    An unknown name or a bad ratio raises ValueError, so a typo does not silently trace
    everything (or nothing) at a production rate."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name in ("always_on", "always_off", "parentbased_always_on", "parentbased_always_off"):
        root = ALWAYS_ON if name.endswith("always_on") else ALWAYS_OFF
        return ParentBased(root) if name.startswith("parentbased_") else root
    if name in ("traceidratio", "parentbased_traceidratio"):
        argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
        try:
            ratio = float(argument)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be a ratio in [0, 1]: {argument!r}")
        ratio_sampler = TraceIdRatioBased(ratio)
        return ParentBased(ratio_sampler) if name.startswith("parentbased_") else ratio_sampler
    raise ValueError(f"OTEL_TRACES_SAMPLER not supported: {name!r}")


_sampler = _SwitchSampler()
_router = _ExportRouter()
_provider: TracerProvider | None = None


def tracing_enabled() -> bool:
    """True while `configure_tracing` has tracing on (spans are recorded and exported)."""
    return _sampler.on


def configure_tracing(service_name: str, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set or `exporter` is given.

    With `exporter` (tests: an InMemorySpanExporter) spans are exported synchronously; with
    the environment variable, batched over OTLP/gRPC (the exporter reads the standard
    `OTEL_EXPORTER_OTLP_*` variables). The first call installs the global tracer provider
    (named `service_name`, or `OTEL_SERVICE_NAME`); later calls add exporters to it.
    Returns whether tracing is on.
    """
    global _provider
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return tracing_enabled()
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    _sampler.inner = sampler_from_environment()
    if _provider is None:
        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        _provider = TracerProvider(
            resource=Resource.create({"service.name": name}), sampler=_sampler
        )
        _provider.add_span_processor(_router)
        trace.set_tracer_provider(_provider)
    if exporter is not None:
        _router.processors.append(SimpleSpanProcessor(exporter))
    else:
        # Imported here so the gRPC exporter machinery loads only when tracing is on.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        _router.processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    _sampler.on = True
    return True


def shutdown_tracing() -> None:
    """Turn tracing off: flush and stop the exporters (call on service shutdown)."""
    _sampler.on = False
    _router.force_flush()
    _router.shutdown()


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    """The tracer for `name` from the global provider (no-op while tracing is off)."""
    return trace.get_tracer(name)


def inject_trace_context() -> dict[str, str]:
    """W3C `traceparent` (and `tracestate`) of the current span, for event metadata; `{}`
    when there is no recording span (tracing off)."""
    if not _sampler.on or not trace.get_current_span().get_span_context().is_valid:
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


class _NoSpan(AbstractContextManager[Span]):
    """What `span_from_metadata` returns while tracing is off: one shared object, so the
    engine's per-command call costs an attribute check and two method calls."""

    def __enter__(self) -> Span:
        return trace.INVALID_SPAN

    def __exit__(self, *_exc_info: object) -> None:
        return None


_NO_SPAN = _NoSpan()


def span_from_metadata(
    name: str,
    metadata: Mapping[str, Any],
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> AbstractContextManager[Span]:
    """A context manager starting (and making current) a span named `name` whose parent is
    the trace context in `metadata`, e.g. the engine's `engine.match` span for one
    OrderPlaceRequested. While tracing is off it is a shared no-op yielding the invalid span,
    and the metadata is not read."""
    if not _sampler.on:
        return _NO_SPAN
    return get_tracer().start_as_current_span(
        name,
        context=extract_trace_context(metadata),
        kind=kind,
        attributes=dict(attributes) if attributes else None,
    )


def record_batch_spans(
    name: str,
    metadatas: Iterable[Mapping[str, Any]],
    started_ns: int,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> int:
    """After a batch of events was applied in one transaction, record one span `name` per
    distinct trace in their metadata, each a child of that trace's `traceparent`, lasting
    from `started_ns` (`time.time_ns()` before the batch) until now. This is how the
    projection builders join every command's trace without a span per event in their hot
    loop. Returns the number of spans recorded (0, at no cost, while tracing is off)."""
    if not _sampler.on:
        return 0
    tracer = get_tracer()
    seen: set[str] = set()
    ended_ns = time.time_ns()
    for metadata in metadatas:
        traceparent = metadata.get("traceparent")
        if not traceparent or traceparent in seen:
            continue
        seen.add(traceparent)
        span = tracer.start_span(
            name,
            context=extract_trace_context(metadata),
            kind=SpanKind.CONSUMER,
            attributes=dict(attributes) if attributes else None,
            start_time=started_ns,
        )
        span.end(end_time=ended_ns)
    return len(seen)
