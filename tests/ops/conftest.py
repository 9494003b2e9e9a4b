"""Fixtures of the ops tests: tracing on with an in-memory exporter, for one test module
at a time, so the rest of the suite runs with tracing off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.observability.tracing import configure_tracing, shutdown_tracing


@pytest.fixture(scope="module")
def span_exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert configure_tracing("exchange-test", exporter=exporter)
    yield exporter
    shutdown_tracing()


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The exporter, emptied before the test."""
    span_exporter.clear()
    yield span_exporter
