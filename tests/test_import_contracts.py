"""The direction of imports is a checked fact: the contracts hold, and a wrong import
breaks them (pyproject.toml's [tool.importlinter], run by `make check`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "server", "projections", "clients")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_domain_importing_the_service_breaks_them(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "domain" / "shortcut.py").write_text("from server import commands\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1
    assert "domain imports nothing of the rest BROKEN" in result.stdout
    assert "domain.shortcut -> server.commands" in result.stdout
