"""The log format follows `LOG_JSON`, and with it unset follows stdout: JSON lines into a
pipe or a file (containers, CI), the readable console format in a terminal (`make run`)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import pytest
from ops_queries import ROOT

from server.settings import Settings

_LOG_ONE_LINE = textwrap.dedent(
    """
    from server.settings import Settings
    from server.observability.logging import configure_logging, get_logger
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    get_logger("probe").info("order accepted", order_id="o-1")
    """
)


def _log_line(terminal: bool, **env: str) -> str:
    """The line the service's logging writes, with stdout a pipe or a pseudo-terminal."""
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TERM": "dumb", **env}
    if not terminal:
        result = subprocess.run(
            [sys.executable, "-c", _LOG_ONE_LINE],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=environment,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()
    controller, terminal_end = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-c", _LOG_ONE_LINE],
            stdout=terminal_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=environment,
            timeout=60,
        )
        assert process.returncode == 0, process.stderr
        output = os.read(controller, 65536).decode()
    finally:
        os.close(controller)
        os.close(terminal_end)
    return output.strip()


def test_log_json_unset_means_decide_by_stdout() -> None:
    assert Settings.from_env({}).log_json is None
    assert Settings.from_env({"LOG_JSON": "1"}).log_json is True
    assert Settings.from_env({"LOG_JSON": "0"}).log_json is False


@pytest.mark.parametrize(
    ("terminal", "env", "json_expected"),
    [
        (False, {}, True),
        (True, {}, False),
        (True, {"LOG_JSON": "1"}, True),
        (False, {"LOG_JSON": "0"}, False),
    ],
)
def test_log_format(terminal: bool, env: dict[str, str], json_expected: bool) -> None:
    line = _log_line(terminal, **env)
    assert "order accepted" in line
    assert "o-1" in line
    assert line.startswith("{") is json_expected, line
