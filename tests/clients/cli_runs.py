"""Running the `exchange` CLI and capturing what it printed: in the test's event loop
(`run_json`, `run_text`), or as a process of its own (`exchange_cli`, `exchange_json`), for
tests whose service logs to the same stdout."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from clients.cli import run


async def run_json(
    target: str, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, object]], str]:
    """Exit status, the JSON lines on stdout, and stderr."""
    capsys.readouterr()
    status = await run(["--target", target, "--json", *argv])
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


async def run_text(
    target: str, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[str], str]:
    """Exit status, the lines on stdout (without the padding rich puts after table cells),
    and stderr."""
    capsys.readouterr()
    status = await run(["--target", target, *argv])
    captured = capsys.readouterr()
    return status, [line.rstrip() for line in captured.out.splitlines()], captured.err


REPOSITORY = Path(__file__).resolve().parents[2]


async def exchange_cli(
    target: str, *argv: str, environ: dict[str, str] | None = None
) -> tuple[int, list[str], str]:
    """Exit status, stdout lines (right-stripped) and stderr of one `exchange` process,
    whose environment holds no key unless `environ` gives one."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("EXCHANGE_API_KEY", "ADMIN_API_KEY")
    }
    env["PYTHONPATH"] = str(REPOSITORY)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clients.cli",
        "--target",
        target,
        *argv,
        env={**env, **(environ or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    lines = [line.rstrip() for line in out.decode().splitlines()]
    return process.returncode or 0, lines, err.decode()


async def exchange_json(
    target: str, *argv: str, environ: dict[str, str] | None = None
) -> tuple[int, list[Any], str]:
    status, lines, err = await exchange_cli(target, "--json", *argv, environ=environ)
    return status, [json.loads(line) for line in lines], err
