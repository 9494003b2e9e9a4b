"""Tracing's cost end to end: PlaceOrder with tracing off, then on (ops/tracing_overhead.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "ops" / "tracing_overhead.py"


def main(argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("tracing_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.main(argv)
