"""Tracing's cost end to end: PlaceOrder with tracing off, then on (ops/tracing_overhead.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "ops" / "tracing_overhead.py"
MODULE_NAME = "tracing_overhead"


def load_overhead_script() -> ModuleType:
    """The ops script as a module. It must be in sys.modules while it runs: its dataclasses
    look their module up there."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    return module


def main(argv: list[str]) -> None:
    load_overhead_script().main(argv)
