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

from server.engine_process import EngineProcess
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
    reader, writer = pty.openpty() if terminal else os.pipe()
    try:
        result = subprocess.run(
            [sys.executable, "-c", _LOG_ONE_LINE],
            stdout=writer,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TERM": "dumb", **env},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return os.read(reader, 65536).decode().strip()
    finally:
        os.close(reader)
        os.close(writer)


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


def test_the_engine_child_gets_the_same_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine child shares the service's stdout: left unset it decides the same way,
    whatever LOG_JSON the service's own environment held."""
    monkeypatch.setenv("LOG_JSON", "1")
    for log_json, passed in ((None, None), (True, "1"), (False, "0")):
        environment = EngineProcess(Settings(log_json=log_json))._env()
        assert environment.get("LOG_JSON") == passed
