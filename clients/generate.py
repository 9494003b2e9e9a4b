"""Generate the Python stubs of the gRPC API from `proto/` into `clients/generated/`.

`python -m clients.generate` regenerates the committed stubs (messages, gRPC stubs and
servicer bases, and mypy-protobuf type stubs for both). `python -m clients.generate --check`
regenerates into a temporary directory and fails when the committed stubs differ, and runs
`buf lint` and `buf format --diff --exit-code` on `proto/` (what CI runs through `make test`).

protoc writes absolute imports rooted at the proto path (`from exchange.v1 import ...`); they
are rewritten to `from clients.generated.exchange.v1 import ...` so the stubs import as a
subpackage of `clients` while the descriptors keep their canonical file names
(`exchange/v1/*.proto`), which is what server reflection shows.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
GENERATED_ROOT = REPO_ROOT / "clients" / "generated"
GENERATED_PACKAGE = "clients.generated"
# Top-level proto packages whose generated imports are rewritten into GENERATED_PACKAGE.
OWN_PROTO_PACKAGES = ("exchange",)

_OWN_IMPORT = re.compile(
    r"^(\s*)(from|import) (" + "|".join(OWN_PROTO_PACKAGES) + r")(\.| )", re.MULTILINE
)

_INIT_DOCSTRINGS = {
    Path("__init__.py"): "Generated stubs (`python -m clients.generate`); do not edit.",
    Path("exchange/__init__.py"): "Generated stubs of the `exchange` proto packages.",
    Path("exchange/v1/__init__.py"): "Generated stubs of proto package `exchange.v1`.",
}


class GenerationError(RuntimeError):
    """protoc or buf failed; the message holds its output."""


def _tool(name: str) -> str:
    """Path of an executable installed beside this interpreter (the venv), else on PATH."""
    beside_interpreter = Path(sys.executable).parent / name
    if beside_interpreter.exists():
        return str(beside_interpreter)
    found = shutil.which(name)
    if found is None:
        raise GenerationError(f"{name} not found (install the dev extras: pip install -e '.[dev]')")
    return found


def proto_files() -> list[Path]:
    """Every .proto under proto/, relative to it, in a stable order."""
    return sorted(path.relative_to(PROTO_ROOT) for path in PROTO_ROOT.rglob("*.proto"))


def _rewrite_imports(source: str) -> str:
    return _OWN_IMPORT.sub(rf"\1\2 {GENERATED_PACKAGE}.\3\4", source)


def generate(output_root: Path) -> list[Path]:
    """Run protoc into `output_root` and fix imports; return the files written (relative)."""
    output_root.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={_tool('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_tool('protoc-gen-mypy_grpc')}",
        f"--python_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        *(str(path) for path in proto_files()),
    ]
    completed = subprocess.run(command, cwd=PROTO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise GenerationError(f"protoc failed:\n{completed.stdout}{completed.stderr}")
    for generated in sorted(output_root.rglob("*.py*")):
        generated.write_text(_rewrite_imports(generated.read_text()))
    for init_path, docstring in _INIT_DOCSTRINGS.items():
        (output_root / init_path).write_text(f'"""{docstring}"""\n')
    return _listing(output_root)


def _listing(root: Path) -> list[Path]:
    return sorted(
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def _differences(expected_root: Path, actual_root: Path) -> list[str]:
    """Human-readable differences between freshly generated and committed stubs."""
    expected_files = set(_listing(expected_root))
    actual_files = set(_listing(actual_root)) if actual_root.exists() else set()
    problems = [f"missing: {path}" for path in sorted(expected_files - actual_files)]
    problems += [f"unexpected: {path}" for path in sorted(actual_files - expected_files)]
    for path in sorted(expected_files & actual_files):
        expected_text = (expected_root / path).read_text()
        actual_text = (actual_root / path).read_text()
        if expected_text != actual_text:
            diff = difflib.unified_diff(
                actual_text.splitlines(),
                expected_text.splitlines(),
                f"committed/{path}",
                f"generated/{path}",
                lineterm="",
                n=1,
            )
            problems.append("\n".join(list(diff)[:40]))
    return problems


def _run_buf(*arguments: str) -> str | None:
    """Run buf from the repository root; return its output on failure, None on success."""
    completed = subprocess.run(
        [_tool("buf"), *arguments], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if completed.returncode == 0:
        return None
    return f"buf {' '.join(arguments)} failed:\n{completed.stdout}{completed.stderr}"


def check() -> list[str]:
    """Every problem found: stale stubs, lint findings, unformatted proto files."""
    with tempfile.TemporaryDirectory(prefix="exchange-stubs-") as scratch:
        fresh_root = Path(scratch) / "generated"
        generate(fresh_root)
        problems = _differences(fresh_root, GENERATED_ROOT)
    if problems:
        problems.insert(0, "clients/generated/ is stale: run `python -m clients.generate`")
    for buf_arguments in (("lint",), ("format", "--diff", "--exit-code")):
        failure = _run_buf(*buf_arguments)
        if failure is not None:
            problems.append(failure)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.generate", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail if clients/generated/ is stale, or buf lint/format finds problems",
    )
    arguments = parser.parse_args(argv)
    try:
        if arguments.check:
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                return 1
            print("clients/generated/ is up to date; buf lint and buf format are clean")
            return 0
        with tempfile.TemporaryDirectory(prefix="exchange-stubs-") as scratch:
            fresh_root = Path(scratch) / "generated"
            written = generate(fresh_root)
            # Replace the whole tree so stubs of deleted .proto files disappear too.
            shutil.rmtree(GENERATED_ROOT, ignore_errors=True)
            shutil.copytree(fresh_root, GENERATED_ROOT)
    except GenerationError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files into {GENERATED_ROOT.relative_to(REPO_ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
