"""Observability for the exchange service: Prometheus metrics, structlog logs, OTel tracing.

Modules, each with one job:
- `metrics`: every Prometheus metric the service exports (defined once, at import) and the
  small helpers other parts call to record order flow, latency, lag and book state;
  `start_metrics_server(port)` serves them over HTTP.
- `logging`: `configure_logging(level, json)` for structlog (JSON lines, or a console
  renderer on a terminal) with the current trace and span ids bound to every line.
- `tracing`: `configure_tracing(service_name)` (OTLP export only when
  `OTEL_EXPORTER_OTLP_ENDPOINT` is set), and W3C trace context carried in event metadata.
- `interceptors`: grpc.aio server interceptors (metrics, and tracing when it is on) and the
  matching client interceptors.

docs/operations.md documents the metric names, panels, alerts and how to turn tracing on.
"""
