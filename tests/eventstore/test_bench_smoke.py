"""The event store benchmark still runs (at a tiny scale; its figures are not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_end_to_end(service_urls) -> None:  # type: ignore[no-untyped-def]
    completed = subprocess.run(
        [sys.executable, "-c", "import bench.eventstore as b; b.main(['--scale', '0.005'])"],
        cwd=REPOSITORY,
        env={**os.environ, "DATABASE_URL": service_urls.database_url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    for figure in ("1 writer", "16 writers", "batches of 1000", "catch-up", "p99"):
        assert figure in completed.stdout
