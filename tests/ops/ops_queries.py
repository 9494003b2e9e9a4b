"""What the ops files query: the metric names used by the dashboard panels and the
Prometheus rules, and the sample names metrics.py defines. Shared by the static checks and
the live Prometheus test."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import server.observability.metrics  # noqa: F401  (defines the exchange_* metrics)

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
PROMETHEUS_DIR = OPS / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
DASHBOARD_FILES = sorted((OPS / "grafana" / "dashboards").glob("*.json"))

# Series names a query may use: our own, the client library's process/python collectors,
# Prometheus's `up`, and recording rules (`exchange:...`).
_SERIES = re.compile(
    r"(?<![\w:])(exchange_\w+|exchange:[\w:]+|process_\w+|python_\w+|up)(?=[\s{\[)])"
)


def series_in(expr: str) -> set[str]:
    """Series names referenced by one PromQL expression."""
    return set(_SERIES.findall(expr + " "))


def dashboard_exprs() -> list[str]:
    exprs: list[str] = []
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                exprs.append(query["query"].replace("label_values(", "(").replace(",", " ,"))
    return exprs


def rules() -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def recorded_series() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def raw_series(exprs: Iterable[str]) -> set[str]:
    """Series (not recording rules) the expressions use."""
    used: set[str] = set()
    for expr in exprs:
        used |= series_in(expr)
    return {name for name in used if ":" not in name}


def used_by_ops() -> set[str]:
    """Every raw series used by a dashboard panel or a rule."""
    return raw_series([*dashboard_exprs(), *(rule["expr"] for rule in rules())])


def defined_samples() -> dict[str, str]:
    """Sample name -> metric family name, for every metric in the default registry."""
    samples: dict[str, str] = {}
    for family in REGISTRY.collect():
        name = family.name
        if family.type == "counter":
            samples[name + "_total"] = name
        elif family.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                samples[name + suffix] = name
        elif family.type == "info":
            samples[name + "_info"] = name
        elif family.type == "summary":
            for suffix in ("", "_sum", "_count"):
                samples[name + suffix] = name
        else:
            samples[name] = name
    return samples
