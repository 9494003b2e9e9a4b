"""The ops files are valid and agree with the code: promtool accepts the Prometheus config
and rules (and their unit tests pass), the dashboard JSON is generated from
ops/grafana/dashboard.py, and every metric a panel or rule queries is defined in
server/observability/metrics.py."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from ops_queries import (
    DASHBOARD_FILES,
    PROMETHEUS_DIR,
    ROOT,
    RULE_FILES,
    dashboard_exprs,
    defined_samples,
    recorded_series,
    rules,
    series_in,
    used_by_ops,
)

INSTALL_HINT = "promtool is missing: apt-get install -y --no-install-recommends prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable is not None, INSTALL_HINT
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, cwd=PROMETHEUS_DIR, timeout=60
    )


def _load_dashboard_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dashboard_generator", ROOT / "ops" / "grafana" / "dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_promtool_accepts_the_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", *(str(path) for path in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_the_issue_asks_for_exist() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert {"EngineStalled", "ProjectionLagHigh", "GrpcErrorRateHigh"} <= alerts


def test_dashboard_json_is_generated_from_dashboard_py() -> None:
    generator = _load_dashboard_generator()
    assert generator.DASHBOARD_PATH.read_text() == generator.render(), (
        "run: .venv/bin/python ops/grafana/dashboard.py"
    )


def test_every_queried_metric_is_defined_in_metrics_py() -> None:
    defined = defined_samples()
    used = used_by_ops()
    assert used, "no metric found in the dashboard or rules"
    missing = sorted(name for name in used if name != "up" and name not in defined)
    assert missing == []


def test_every_recording_rule_the_dashboard_uses_exists() -> None:
    used = set().union(*(series_in(expr) for expr in dashboard_exprs()))
    assert {name for name in used if ":" in name} <= recorded_series()


def test_series_extraction() -> None:
    assert series_in(
        'histogram_quantile(0.99, sum by (le) (rate(exchange_a_bucket{method="X"}[5m]))) '
        '/ exchange:b:rate5m + up{job="exchange"}'
    ) == {"exchange_a_bucket", "exchange:b:rate5m", "up"}


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda path: path.name)
def test_dashboard_panels_are_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    datasource_file = ROOT / "ops/grafana/provisioning/datasources/prometheus.yml"
    datasource_uids = {
        source["uid"] for source in yaml.safe_load(datasource_file.read_text())["datasources"]
    }
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    titles = [panel["title"] for panel in panels if panel["type"] != "row"]
    assert len(set(titles)) == len(titles)
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] >= 0 and position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in datasource_uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in datasource_uids, panel["title"]
    rows = {panel["title"] for panel in panels if panel["type"] == "row"}
    assert {"Order flow", "Latency", "Lag and queues", "Book and prices"} <= rows


def test_every_exchange_metric_is_documented() -> None:
    documented = (ROOT / "docs" / "operations.md").read_text()
    # Histograms are documented by family name, the others by sample name.
    names = {
        family if sample.endswith(("_bucket", "_sum", "_count")) else sample
        for sample, family in defined_samples().items()
        if family.startswith("exchange_")
    }
    assert sorted(name for name in names if f"`{name}`" not in documented) == []
