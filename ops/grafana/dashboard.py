"""Generates ops/grafana/dashboards/exchange.json, the Grafana dashboard of the exchange.

The dashboard is written as code so panels stay uniform and reviewable; the JSON is
committed for Grafana's file provisioning, and tests/ops checks it is up to date and that
every metric it queries exists. Regenerate with:

    .venv/bin/python ops/grafana/dashboard.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_PATH = Path(__file__).resolve().parent / "dashboards" / "exchange.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
INSTRUMENT = 'instrument=~"$instrument"'
RATE = "$__rate_interval"
WIDTH = 24


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)


def quantiles(metric: str, selector: str = "", by: str = "") -> tuple[Target, ...]:
    """p50 / p90 / p99 of a histogram, optionally split by a label."""
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{int(q * 100)}{suffix}",
        )
        for q in (0.5, 0.9, 0.99)
    )


def rate_by(metric: str, by: str, selector: str = INSTRUMENT) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"


ORDER_FLOW = [
    Panel(
        "Order flow",
        "Orders per second by outcome, over the selected instruments.",
        (
            Target(f"sum(rate(exchange_orders_placed_total{{{INSTRUMENT}}}[{RATE}]))", "placed"),
            Target(
                f"sum(rate(exchange_orders_accepted_total{{{INSTRUMENT}}}[{RATE}]))", "accepted"
            ),
            Target(
                f"sum(rate(exchange_orders_rejected_total{{{INSTRUMENT}}}[{RATE}]))", "rejected"
            ),
            Target(f"sum(rate(exchange_orders_filled_total{{{INSTRUMENT}}}[{RATE}]))", "filled"),
            Target(
                f"sum(rate(exchange_orders_partially_filled_total{{{INSTRUMENT}}}[{RATE}]))",
                "partial fills",
            ),
            Target(
                f"sum(rate(exchange_orders_cancelled_total{{{INSTRUMENT}}}[{RATE}]))", "cancelled"
            ),
            Target(f"sum(rate(exchange_orders_expired_total{{{INSTRUMENT}}}[{RATE}]))", "expired"),
        ),
        unit="ops",
        width=12,
    ),
    Panel(
        "Order fulfilment rate",
        "Of the orders that reached a final state in the last 5 minutes, the share completely "
        "filled (recording rule exchange:order_fulfilment_ratio:rate5m).",
        (Target(f"exchange:order_fulfilment_ratio:rate5m{{{INSTRUMENT}}}", "{{instrument}}"),),
        unit="percentunit",
        width=6,
        options={"min": 0, "max": 1},
    ),
    Panel(
        "Fulfilment rate now",
        "Latest fulfilment rate per instrument.",
        (Target(f"exchange:order_fulfilment_ratio:rate5m{{{INSTRUMENT}}}", "{{instrument}}"),),
        unit="percentunit",
        kind="stat",
        width=6,
    ),
    Panel(
        "Trades per second",
        "Trades executed per instrument.",
        (Target(rate_by("exchange_trades_total", "instrument"), "{{instrument}}"),),
        unit="ops",
    ),
    Panel(
        "Traded volume per second",
        "Base-asset quantity traded per second.",
        (Target(rate_by("exchange_traded_volume_total", "instrument"), "{{instrument}}"),),
    ),
    Panel(
        "Traded notional per second",
        "Quote-asset value traded per second.",
        (Target(rate_by("exchange_traded_notional_total", "instrument"), "{{instrument}}"),),
    ),
    Panel(
        "Rejections by reason",
        "Orders the engine rejected, by reason code.",
        (Target(rate_by("exchange_orders_rejected_total", "reason"), "{{reason}}"),),
        unit="ops",
    ),
    Panel(
        "Cancellations by reason",
        "Orders cancelled (user request, IOC/FOK remainder, self-trade prevention...).",
        (Target(rate_by("exchange_orders_cancelled_total", "reason"), "{{reason}}"),),
        unit="ops",
    ),
    Panel(
        "Commands by result",
        "Commands handled by the command service: appended, duplicate, or refused status.",
        (
            Target(
                f"sum by (command, result) (rate(exchange_commands_total[{RATE}]))",
                "{{command}} {{result}}",
            ),
        ),
        unit="ops",
    ),
]

LATENCY = [
    Panel(
        "PlaceOrder latency (gRPC)",
        "Server-side time of PlaceOrder calls.",
        quantiles("exchange_grpc_request_duration_seconds", 'method="PlaceOrder"'),
        unit="s",
    ),
    Panel(
        "Place to ack",
        "From PlaceOrder received to the engine's answer durably appended.",
        quantiles("exchange_place_to_ack_seconds", INSTRUMENT),
        unit="s",
    ),
    Panel(
        "Place to fill visible",
        "From PlaceOrder received to its fill visible in the query views.",
        quantiles("exchange_place_to_fill_visible_seconds", INSTRUMENT),
        unit="s",
    ),
    Panel(
        "Engine time per command (p99)",
        "Matching engine time for one command, by command type.",
        quantiles("exchange_engine_command_duration_seconds", by="command")[2:],
        unit="s",
    ),
    Panel(
        "Event-store append",
        "Time of one event-store append (group-commit batch).",
        quantiles("exchange_eventstore_append_duration_seconds"),
        unit="s",
    ),
    Panel(
        "Append batch size",
        "Average events per append and engine commands per atomic append.",
        (
            Target(
                f"sum(rate(exchange_eventstore_append_batch_events_sum[{RATE}])) / "
                f"sum(rate(exchange_eventstore_append_batch_events_count[{RATE}]))",
                "events per append",
            ),
            Target(
                f"sum(rate(exchange_engine_batch_commands_sum[{RATE}])) / "
                f"sum(rate(exchange_engine_batch_commands_count[{RATE}]))",
                "commands per engine batch",
            ),
        ),
    ),
]

LAG = [
    Panel(
        "Lag (events)",
        "Events of the log after each consumer's position, counted against the log's head "
        "(a stuck consumer's lag keeps growing).",
        (Target("sum by (consumer) (exchange_consumer_lag_events)", "{{consumer}}"),),
    ),
    Panel(
        "Lag (seconds)",
        "Age of the oldest event each consumer has not applied yet (0 when caught up).",
        (Target("max by (consumer) (exchange_consumer_lag_seconds)", "{{consumer}}"),),
        unit="s",
    ),
    Panel(
        "Events processed per second",
        "Throughput of the engine runner and each projection.",
        (
            Target(
                f"sum by (consumer) (rate(exchange_consumer_events_processed_total[{RATE}]))",
                "{{consumer}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Consumers stuck and failing",
        "1 while a consumer is stopped at an event it cannot apply "
        "(exchange_consumer_stuck_event names its position, type and reason); failed attempts "
        "per second.",
        (
            Target("max by (consumer) (exchange_consumer_stuck)", "{{consumer}} stuck"),
            Target(
                f"sum by (consumer) (rate(exchange_consumer_failures_total[{RATE}]))",
                "{{consumer}} failures/s",
            ),
        ),
    ),
    Panel(
        "In flight",
        "Commands and gRPC calls being handled now.",
        (
            Target("sum by (command) (exchange_commands_in_flight)", "command {{command}}"),
            Target("sum by (method) (exchange_grpc_requests_in_flight)", "gRPC {{method}}"),
        ),
    ),
    Panel(
        "Queue lengths",
        "Items waiting in internal queues.",
        (Target("sum by (queue) (exchange_queue_length)", "{{queue}}"),),
    ),
    Panel(
        "Stream subscribers",
        "Live market-data subscribers and messages sent per second.",
        (
            Target("sum by (stream) (exchange_stream_subscribers)", "{{stream}} subscribers"),
            Target(
                f"sum by (method) (rate(exchange_grpc_stream_messages_sent_total[{RATE}]))",
                "{{method}} msg/s",
            ),
        ),
    ),
]

BOOK = [
    Panel(
        "Best bid, best ask, last price",
        "Top of book and last trade price per instrument.",
        (
            Target(f"exchange_book_best_bid{{{INSTRUMENT}}}", "bid {{instrument}}"),
            Target(f"exchange_book_best_ask{{{INSTRUMENT}}}", "ask {{instrument}}"),
            Target(f"exchange_last_trade_price{{{INSTRUMENT}}}", "last {{instrument}}"),
        ),
        width=12,
    ),
    Panel(
        "Spread",
        "Best ask minus best bid.",
        (Target(f"exchange_book_spread{{{INSTRUMENT}}}", "{{instrument}}"),),
        width=12,
    ),
    Panel(
        "Book depth",
        "Quantity resting on each side.",
        (Target(f"exchange_book_depth{{{INSTRUMENT}}}", "{{instrument}} {{side}}"),),
        width=12,
    ),
    Panel(
        "Price levels",
        "Price levels on each side.",
        (Target(f"exchange_book_levels{{{INSTRUMENT}}}", "{{instrument}} {{side}}"),),
        width=12,
    ),
]

GRPC_AND_PROCESS = [
    Panel(
        "gRPC calls per second",
        "Calls by method and status code.",
        (
            Target(
                f"sum by (method, code) (rate(exchange_grpc_requests_total[{RATE}]))",
                "{{method}} {{code}}",
            ),
        ),
        unit="reqps",
    ),
    Panel(
        "gRPC server error ratio",
        "Share of calls failing on the server side (alert GrpcErrorRateHigh above 1%).",
        (Target("exchange:grpc_server_errors:ratio_rate5m", "server errors"),),
        unit="percentunit",
    ),
    Panel(
        "Service up",
        "1 while Prometheus scrapes the service.",
        (Target('up{job="exchange"}', "{{instance}}"),),
        kind="stat",
    ),
    Panel(
        "CPU",
        "CPU seconds per second used by the service process.",
        (Target(f'rate(process_cpu_seconds_total{{job="exchange"}}[{RATE}])', "{{instance}}"),),
        unit="percentunit",
    ),
    Panel(
        "Memory",
        "Resident memory of the service process.",
        (Target('process_resident_memory_bytes{job="exchange"}', "{{instance}}"),),
        unit="bytes",
    ),
    Panel(
        "Open file descriptors and GC",
        "Open descriptors and Python garbage collections per second.",
        (
            Target('process_open_fds{job="exchange"}', "open fds"),
            Target(
                "sum by (generation) "
                f'(rate(python_gc_collections_total{{job="exchange"}}[{RATE}]))',
                "gc gen {{generation}}",
            ),
        ),
    ),
]

ROWS = [
    ("Order flow", ORDER_FLOW),
    ("Latency", LATENCY),
    ("Lag and queues", LAG),
    ("Book and prices", BOOK),
    ("gRPC and process health", GRPC_AND_PROCESS),
]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    defaults.update(panel.options)
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {
                "datasource": DATASOURCE,
                "expr": target.expr,
                "legendFormat": target.legend,
                "refId": chr(ord("A") + index),
            }
            for index, target in enumerate(panel.targets)
        ],
    }
    if panel.kind == "timeseries":
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
    return body


def build_dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row_panels:
            if x + panel.width > WIDTH:
                x = 0
                y += row_height
                row_height = 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": "exchange-overview",
        "title": "Exchange overview",
        "description": "Order flow, fulfilment, latency, lag, book and process health.",
        "tags": ["exchange"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "5s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "instrument",
                    "label": "Instrument",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(exchange_orders_placed_total, instrument)",
                        "refId": "instrument",
                    },
                    "definition": "label_values(exchange_orders_placed_total, instrument)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    text = render()
    if check:
        if DASHBOARD_PATH.read_text() != text:
            print(f"{DASHBOARD_PATH} is stale: run python ops/grafana/dashboard.py")
            return 1
        return 0
    DASHBOARD_PATH.write_text(text)
    print(f"wrote {DASHBOARD_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
