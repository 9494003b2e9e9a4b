"""`make bench`: run every benchmark module in turn and print its figures.

Each module under bench/ exposes `main(argv) -> None` and prints its own figures. Pass
module names to run only some: `python -m bench engine eventstore`.
"""

from __future__ import annotations

import importlib
import sys

MODULES = [
    "side_by_side",
    "engine",
    "accounts",
    "eventstore",
    "projections",
    "restart",
    "service",
    "tracing",
]


def main() -> None:
    selected = sys.argv[1:] or MODULES
    for name in selected:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"bench.{name}":
                print(f"== bench.{name}: not present, skipped")
                continue
            raise
        print(f"== bench.{name}", flush=True)
        module.main([])


if __name__ == "__main__":
    main()
