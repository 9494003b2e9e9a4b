"""Running the `exchange` CLI in the test's event loop and capturing what it printed."""

from __future__ import annotations

import json

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
