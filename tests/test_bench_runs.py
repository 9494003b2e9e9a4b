"""Every `make bench` module still runs to its figures, at a tiny scale (the figures
themselves are not checked: speed is measured by `make bench`, never asserted in tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

TINY_RUNS = {
    "accounts": (["--ops", "3000", "--repeat", "1"], ("balances off", "balances on", "target")),
    "side_by_side": (
        ["--ops", "3000", "--repeat", "1"],
        ("reference book", "x the reference", "every contender agrees", "replay check"),
    ),
    "engine": (["--ops", "3000", "--no-calibrate"], ("ops per CPU-second", "stops waiting", "p99")),
    "eventstore": (
        ["--scale", "0.005"],
        ("1 writer", "16 writers", "batches of 1000", "catch-up", "p99", "of a raw 1000-row"),
    ),
    "projections": (["300"], ("rebuild", "write-to-view")),
    "restart": (
        ["--inputs", "300", "--snapshot-every", "100", "--tail", "50", "--resting", "40"],
        ("state loaded", "caught up", "without a snapshot"),
    ),
    "service": (
        [
            "--calls",
            "50",
            "--orders",
            "40",
            "--stream-orders",
            "200",
            "--window",
            "50",
            "--pairs",
            "20",
            "--rate",
            "200",
            "50",
        ],
        (
            "Ping",
            "StreamPing",
            "PlaceOrder",
            "StreamPlaceOrders",
            "place-to-fill-visible",
            "streaming entry, durable, matched and projected",
            "target <= 0.2 ms",
            "command side alone",
        ),
    ),
    "tracing": (["--orders", "40", "--concurrency", "4"], ("tracing off", "tracing on")),
}


@pytest.mark.parametrize("module", sorted(TINY_RUNS))
def test_bench_module_runs(module: str, service_urls) -> None:  # type: ignore[no-untyped-def]
    argv, figures = TINY_RUNS[module]
    completed = subprocess.run(
        [sys.executable, "-c", f"import bench.{module} as b; b.main({argv!r})"],
        cwd=REPOSITORY,
        env={
            **os.environ,
            "DATABASE_URL": service_urls.database_url,
            "REDIS_URL": service_urls.redis_url,
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    for figure in figures:
        assert figure in completed.stdout, completed.stdout
    # Figures only: no per-batch debug lines drowning them.
    assert "projection_batch" not in completed.stdout
