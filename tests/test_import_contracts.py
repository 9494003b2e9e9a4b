"""The direction of imports is a checked fact: the contracts hold, and a wrong import
breaks them (pyproject.toml's [tool.importlinter], run by `make check`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
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


# What the read side may import from server/: the log's contract, the event-store port and
# the shared instrumentation. Everything else must be in the contract's forbidden list.
READ_SIDE_MAY_IMPORT = {
    "server.log_contract",
    "server.eventstore.port",
    "server.observability",
    "server.consumers",
    "server.eventstore",  # the package itself (its __init__ names the adapters lazily)
}


def _server_modules() -> set[str]:
    """server's modules and subpackages, and the event store's (one level down)."""
    names: set[str] = set()
    for parent in ("server", "server/eventstore"):
        for path in (REPO / parent).iterdir():
            if path.name.startswith("_"):
                continue
            if path.suffix == ".py" or (path / "__init__.py").exists():
                names.add(f"{parent.replace('/', '.')}.{path.stem}")
    return names


def test_every_server_module_is_allowed_to_the_read_side_or_forbidden() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    read_side = next(c for c in contracts if c["source_modules"] == ["projections"])
    forbidden = set(read_side["forbidden_modules"])
    unclassified = _server_modules() - forbidden - READ_SIDE_MAY_IMPORT
    assert not unclassified, f"add to the projections contract or allow: {sorted(unclassified)}"
