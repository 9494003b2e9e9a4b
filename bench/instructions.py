"""Instructions per operation of each side-by-side contender, counted by callgrind.

CPU time on a shared host swings by tens of percent between runs; instruction counts do not.
Each contender's timed loop is a child process timing the whole stream minus one timing
none of it (same imports, same stream built), under `valgrind --tool=callgrind`, with
`PYTHONHASHSEED=0`. Slow (about fifty times the native run): `bench.side_by_side
--instructions N` asks for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def _instructions(name: str, count: int, seed: int, timed: int, pure: bool) -> int:
    """Instructions callgrind counts for a whole child process timing `timed` operations."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if pure:
        env["EXCHANGE_PURE_PYTHON"] = "1"
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", "bench.side_by_side", "--child", name, "--ops", str(count)]
    argv += ["--seed", str(seed), "--timed", str(timed)]
    completed = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    for line in completed.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise SystemExit(f"no instruction count from callgrind:\n{completed.stderr[-2000:]}")


def compare_instructions(count: int, seed: int, both_builds: bool, build: str) -> None:
    """Instructions per operation of each contender's timed loop: a process timing the
    whole stream minus one timing none of it (same imports, same stream built)."""
    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not installed, not counted")
        return
    contenders = [("reference", False), ("engine", False)] + (
        [("engine", True)] if both_builds else []
    )
    per_op: dict[tuple[str, bool], float] = {}
    for name, pure in contenders:
        loop = _instructions(name, count, seed, count, pure) - _instructions(
            name, count, seed, 0, pure
        )
        per_op[(name, pure)] = loop / count
    reference = per_op[("reference", False)]
    figures = [f"reference {reference:,.0f}"]
    for name, pure in contenders[1:]:
        label = "engine pure" if pure else f"engine {build}"
        value = per_op[(name, pure)]
        figures.append(f"{label} {value:,.0f} ({reference / value:.2f}x the reference's speed)")
    print(f"instructions per op (callgrind, {count:,} ops): " + ", ".join(figures))
