"""The read side's figures: view rebuild rate and append-to-view latency (projections.bench)."""

from __future__ import annotations

from projections import bench as projections_bench


def main(argv: list[str]) -> None:
    projections_bench.main(argv)
