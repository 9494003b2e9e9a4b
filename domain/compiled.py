"""Which build of the engine runs: the mypyc-compiled modules, or the Python source.

`make compile` (`python -m compile_engine`) compiles the engine's hot modules with mypyc
into `build/compiled/` beside the source tree, never beside the `.py` files, so that the
source is found first unless this module says otherwise. Its manifest records, for each
compiled module, the SHA-256 of the source it was compiled from. When the package is
imported, `select_build` compares those hashes with the `.py` files on disk and puts the
compiled modules ahead of the source on the package's search path only if every one
matches; otherwise (an edited `.py`, another Python, no build at all) the pure build
runs, and a stale build says so with a `RuntimeWarning` naming the changed modules.
`EXCHANGE_PURE_PYTHON=1` forces the pure build.

The compiled modules form one group (they call each other natively), so the choice is
all or nothing. This module imports nothing else of the package: it runs before any of
it is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import sys
import warnings
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR.parent / "build" / "compiled"
MANIFEST_NAME = "manifest.json"
PURE_ENV = "EXCHANGE_PURE_PYTHON"

# What `select_build` decided: "compiled", or "pure" and why.
_active = "pure"
_reason = "not selected yet"


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def forced_pure() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def stale_modules(manifest: dict[str, object], package_dir: Path) -> list[str]:
    """The compiled modules whose source on disk differs from what was compiled."""
    modules = manifest.get("modules")
    if not isinstance(modules, dict):
        return ["(manifest lists no modules)"]
    stale = []
    for name, recorded in sorted(modules.items()):
        source = package_dir / (name.rpartition(".")[2] + ".py")
        if not source.is_file() or source_hash(source) != recorded:
            stale.append(name)
    return stale


def missing_modules(manifest: dict[str, object], build_dir: Path) -> list[str]:
    """The compiled modules the manifest lists but the build directory lacks."""
    modules = manifest.get("modules")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return [
        name
        for name in sorted(modules if isinstance(modules, dict) else ())
        if not (build_dir / (name.replace(".", "/") + suffix)).is_file()
    ]


def select_build(package_path: list[str], build_dir: Path = BUILD_DIR) -> None:
    """Put the compiled modules first on `package_path` (the package's `__path__`) when
    they are present and current; otherwise leave the pure source in charge."""
    global _active, _reason
    _active = "pure"
    if forced_pure():
        _reason = f"{PURE_ENV} is set"
        return
    manifest_path = build_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        _reason = "not compiled (make compile)"
        return
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        _reason = f"unreadable {manifest_path}: {error}"
        warnings.warn(f"domain: {_reason}; running the pure-Python engine", stacklevel=2)
        return
    if manifest.get("cache_tag") != sys.implementation.cache_tag:
        _reason = f"compiled for {manifest.get('cache_tag')}, not {sys.implementation.cache_tag}"
        warnings.warn(f"domain: {_reason}; running the pure-Python engine", stacklevel=2)
        return
    missing = missing_modules(manifest, build_dir)
    if missing:
        _reason = f"compiled build is incomplete: no {', '.join(missing)}"
        warnings.warn(f"domain: {_reason}; running the pure-Python engine", stacklevel=2)
        return
    stale = stale_modules(manifest, Path(package_path[0]))
    if stale:
        _reason = f"compiled build is stale: {', '.join(stale)} changed since it was built"
        warnings.warn(
            f"domain: {_reason}; running the pure-Python engine (run `make compile`)",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    # The package's compiled modules first; the group's shared library is a top-level
    # module of the build directory.
    package_path.insert(0, str(build_dir / "domain"))
    if str(build_dir) not in sys.path:
        sys.path.append(str(build_dir))
    _active, _reason = "compiled", "mypyc build current"


def active_build() -> str:
    """ "compiled" when the package loaded the compiled modules, else "pure"."""
    return _active


def build_reason() -> str:
    """Why the active build was chosen (for logs and `make bench`)."""
    return _reason
