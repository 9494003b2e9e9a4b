"""The choice between the compiled engine (build/compiled/, `make compile`) and the source.

Each case imports the package in a fresh interpreter, from a copy of the package with its
own build directory, so the choice made at import time is the one under test.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compile_engine import up_to_date
from domain.compiled import source_hash

REPOSITORY = Path(__file__).resolve().parents[2]
REAL_BUILD = REPOSITORY / "build" / "compiled"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
PROBE = (
    "import domain.compiled as c, domain.matching as m\n"
    "from domain.engine import MatchingEngine\n"
    "from domain.commands import CancelOrder\n"
    "MatchingEngine().handle(CancelOrder('x'))\n"
    "print(c.active_build(), m.__file__, sep='\\n')\n"
)


def _import_from(root: Path, **env: str) -> tuple[str, str, str]:
    """(active build, file of domain.matching, stderr) of a fresh import from `root`."""
    environment = {k: v for k, v in os.environ.items() if k != "EXCHANGE_PURE_PYTHON"}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=root,
        env={**environment, "PYTHONPATH": str(root), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    build, matching_file = completed.stdout.split()
    return build, matching_file, completed.stderr


def _copy_package(root: Path) -> None:
    shutil.copytree(REPOSITORY / "domain", root / "domain", ignore=shutil.ignore_patterns("*.pyc"))


def _fake_build(root: Path, hashes: dict[str, str]) -> None:
    """A build directory whose manifest records `hashes` (its extension modules are empty
    files: a check that lets them through would fail to load them)."""
    build = root / "build" / "compiled"
    (build / "domain").mkdir(parents=True)
    for name in hashes:
        (build / (name.replace(".", "/") + SUFFIX)).write_bytes(b"")
    manifest = {"cache_tag": sys.implementation.cache_tag, "modules": hashes}
    (build / "manifest.json").write_text(json.dumps(manifest))


def test_without_a_build_the_source_runs_and_nothing_is_said(tmp_path: Path) -> None:
    _copy_package(tmp_path)

    build, matching_file, stderr = _import_from(tmp_path)

    assert (build, matching_file) == ("pure", str(tmp_path / "domain" / "matching.py"))
    assert stderr == ""


def test_an_edited_source_is_never_shadowed_by_its_compiled_module(tmp_path: Path) -> None:
    _copy_package(tmp_path)
    _fake_build(tmp_path, {"domain.matching": "0" * 64, "domain.book": "0" * 64})

    build, matching_file, stderr = _import_from(tmp_path)

    assert (build, matching_file) == ("pure", str(tmp_path / "domain" / "matching.py"))
    assert "RuntimeWarning: domain: compiled build is stale: domain.book, domain.matching " in (
        stderr
    )
    assert "run `make compile`" in stderr


def test_a_build_missing_a_module_is_not_used(tmp_path: Path) -> None:
    _copy_package(tmp_path)
    hashes = {"domain.matching": source_hash(tmp_path / "domain" / "matching.py")}
    _fake_build(tmp_path, hashes)
    (tmp_path / "build" / "compiled" / "domain" / ("matching" + SUFFIX)).unlink()

    build, _, stderr = _import_from(tmp_path)

    assert build == "pure"
    assert "compiled build is incomplete: no domain.matching" in stderr


def test_a_build_for_another_python_is_not_used(tmp_path: Path) -> None:
    _copy_package(tmp_path)
    _fake_build(tmp_path, {"domain.matching": source_hash(tmp_path / "domain" / "matching.py")})
    manifest_path = tmp_path / "build" / "compiled" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "cache_tag": "cpython-00"}))

    build, _, stderr = _import_from(tmp_path)

    assert build == "pure"
    assert f"compiled for cpython-00, not {sys.implementation.cache_tag}" in stderr


needs_real_build = pytest.mark.skipif(
    not up_to_date(),
    reason="no current compiled engine here (`make compile`, which needs a C compiler)",
)


@needs_real_build
def test_the_current_build_is_loaded_unless_pure_python_is_forced() -> None:
    build, matching_file, stderr = _import_from(REPOSITORY)
    assert (build, stderr) == ("compiled", "")
    assert matching_file == str(REAL_BUILD / "domain" / ("matching" + SUFFIX))

    build, matching_file, _ = _import_from(REPOSITORY, EXCHANGE_PURE_PYTHON="1")
    assert (build, matching_file) == ("pure", str(REPOSITORY / "domain" / "matching.py"))


@needs_real_build
def test_editing_one_compiled_module_sends_the_whole_engine_back_to_source(
    tmp_path: Path,
) -> None:
    _copy_package(tmp_path)
    shutil.copytree(REAL_BUILD, tmp_path / "build" / "compiled")
    assert _import_from(tmp_path)[0] == "compiled"
    matching = tmp_path / "domain" / "matching.py"
    matching.write_text(matching.read_text() + "\n# edited after the build\n")

    build, matching_file, stderr = _import_from(tmp_path)

    assert (build, matching_file) == ("pure", str(matching))
    assert "compiled build is stale: domain.matching changed" in stderr


def test_without_a_c_compiler_the_build_says_so_in_one_line_and_succeeds() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "compile_engine"],
        cwd=REPOSITORY,
        env={**os.environ, "PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == "compile: no C compiler found: the engine runs as pure Python\n"
