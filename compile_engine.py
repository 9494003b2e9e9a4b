"""`make compile`: the engine's hot modules compiled with mypyc into build/compiled/.

    python -m compile_engine            # builds when the sources changed; else says so
    python -m compile_engine --force    # builds anyway

The modules stay Python source (`domain/*.py`), type-checked by mypy strict, and run
unchanged without this step. The compiled extension modules and the manifest of the
sources' hashes go to build/compiled/ (never beside the `.py` files); `domain.compiled`
loads them only while every source still matches (see docs/performance.md). Without a C
compiler this prints one line and exits 0: the pure build runs.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # Importing the package checks the build this script is about to replace: not news.
    warnings.simplefilter("ignore", RuntimeWarning)
    from domain.compiled import (
        BUILD_DIR,
        MANIFEST_NAME,
        missing_modules,
        source_hash,
        stale_modules,
    )


ROOT = Path(__file__).resolve().parent

# The hot path's modules (measured: docs/performance.md). Commands and events stay
# msgspec Structs, which mypyc cannot make native; the compiled modules use them as any
# Python object. They call each other natively, so they are compiled as one group.
COMPILED_MODULES = [
    "domain.orders",
    "domain.reasons",
    "domain.sorted_keys",
    "domain.book",
    "domain.book_deltas",
    "domain.accounts",
    "domain.engine_state",
    "domain.validation",
    "domain.matching",
    "domain.order_lifecycle",
    "domain.engine",
]


def c_compiler() -> str | None:
    """The C compiler Python's build uses, if it is installed."""
    configured = sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(configured)
    return shutil.which(words[0]) if words else None


def _sources() -> dict[str, Path]:
    return {name: ROOT / (name.replace(".", "/") + ".py") for name in COMPILED_MODULES}


def up_to_date() -> bool:
    manifest_path = BUILD_DIR / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    manifest = json.loads(manifest_path.read_text())
    return (
        manifest.get("cache_tag") == sys.implementation.cache_tag
        and sorted(manifest.get("modules", {})) == sorted(COMPILED_MODULES)
        and not stale_modules(manifest, ROOT / "domain")
        and not missing_modules(manifest, BUILD_DIR)
    )


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    sources = _sources()
    # Hashed before compiling: a source edited meanwhile then reads as stale.
    hashes = {name: source_hash(path) for name, path in sources.items()}
    with tempfile.TemporaryDirectory(prefix="mypyc-") as scratch:
        work = Path(scratch)
        os.chdir(ROOT)
        extensions = mypycify(
            [str(path.relative_to(ROOT)) for path in sources.values()],
            opt_level="3",
            target_dir=str(work / "c"),
        )
        setup(
            name="exchange-engine-compiled",
            ext_modules=extensions,
            script_args=[
                "-q",
                "build_ext",
                "--build-lib",
                str(work / "lib"),
                "--build-temp",
                str(work / "temp"),
            ],
        )
        if BUILD_DIR.exists():
            shutil.rmtree(BUILD_DIR)
        shutil.copytree(work / "lib", BUILD_DIR)
    import mypy.version

    manifest = {
        "cache_tag": sys.implementation.cache_tag,
        "extension_suffix": importlib.machinery.EXTENSION_SUFFIXES[0],
        "mypy": mypy.version.__version__,
        "modules": hashes,
    }
    (BUILD_DIR / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="compile_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    args = parser.parse_args(argv)
    if c_compiler() is None:
        print("compile: no C compiler found: the engine runs as pure Python")
        return 0
    if not args.force and up_to_date():
        print(f"compile: the compiled engine in {BUILD_DIR.relative_to(ROOT)} is up to date")
        return 0
    build()
    print(
        f"compile: {len(COMPILED_MODULES)} engine modules compiled into "
        f"{BUILD_DIR.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
