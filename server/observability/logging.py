"""structlog setup: JSON lines to stdout, or a readable console format on a terminal.

`configure_logging(level, json)` is called once by the composition root. Every line carries
`timestamp` (RFC 3339 UTC), `level`, `event`, whatever the caller bound (order_id, trade_id,
instrument, ...: use `structlog.contextvars.bind_contextvars` or `log.bind`), and
`trace_id`/`span_id` of the current OpenTelemetry span when tracing is on. Lines written
through the standard `logging` module (asyncpg, grpc, ...) go through the same renderer, so
stdout stays one format.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger


def add_trace_ids(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Bind `trace_id` and `span_id` (hex, as Jaeger shows them) of the current span."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = format(span_context.trace_id, "032x")
        event_dict["span_id"] = format(span_context.span_id, "016x")
    return event_dict


def add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Add `logger` from `structlog.get_logger(__name__)` (unless the caller bound one)."""
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that keeps the name it was created with, like BytesLogger does."""

    def __init__(self, file: Any = None, name: str | None = None) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __init__(self, file: Any) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._file, name=args[0] if args else None)


def _level_number(level: str | int | None) -> int:
    if level is None:
        level = os.environ.get("LOG_LEVEL", "INFO")
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def _orjson_dumps(value: Any, **_ignored: Any) -> bytes:
    # str() renders Decimal prices as "1.5" and datetimes as text (structlog's own fallback
    # would write repr()).
    return orjson.dumps(value, default=str)


def _orjson_dumps_text(value: Any, **_ignored: Any) -> str:
    return _orjson_dumps(value).decode()


def configure_logging(level: str | int | None = None, json: bool | None = None) -> None:
    """Configure structlog and the standard logging module.

    `level` defaults to `LOG_LEVEL` (else INFO); `json` defaults to "stdout is not a
    terminal", so `make run` in a terminal gets colours and a container gets JSON lines.
    """
    level_number = _level_number(level)
    use_json = (not sys.stdout.isatty()) if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        structlog.processors.StackInfoRenderer(),
    ]
    if use_json:
        shared.append(structlog.processors.format_exc_info)
        structlog.configure(
            processors=[
                add_logger_name,
                *shared,
                structlog.processors.JSONRenderer(serializer=_orjson_dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level_number),
            logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
            cache_logger_on_first_use=True,
        )
        stdlib_renderer: Processor = structlog.processors.JSONRenderer(
            serializer=_orjson_dumps_text
        )
    else:
        # Tracebacks without each frame's locals: rendering those (an engine's books, say)
        # took seconds of the event loop per failure while PostgreSQL restarted.
        console = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
        )
        structlog.configure(
            processors=[add_logger_name, *shared, console],
            wrapper_class=structlog.make_filtering_bound_logger(level_number),
            logger_factory=_NamedPrintLoggerFactory(sys.stdout),
            cache_logger_on_first_use=True,
        )
        stdlib_renderer = console

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, stdlib_renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level_number)


def get_logger(name: str | None = None, **bound: Any) -> Any:
    """A structlog logger named `name` (the `logger` field) carrying the given fields."""
    logger = structlog.get_logger(name) if name is not None else structlog.get_logger()
    return logger.bind(**bound) if bound else logger
