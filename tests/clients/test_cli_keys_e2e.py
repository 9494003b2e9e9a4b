"""The `exchange` CLI with API keys against the real service (ExchangeApp on loopback, real
PostgreSQL and Redis): an admin issues a key, the key trades as its account, `keys list`
never shows a secret, a revoked key or no key is refused with a clear message and exit
status 1, and the load generator runs on keys it issues itself. `make run`'s first start
makes the admin key file, and the next start reuses it.

The CLI runs as its own process (`python -m clients.cli`, what `exchange` runs): its output
stays apart from the service's logs, and its exit status is the process's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from api_keys import TEST_ADMIN_API_KEY
from cli_runs import REPOSITORY, exchange_cli, exchange_json
from redis_urls import redis_url_with_db

from server.app import ExchangeApp
from server.settings import Settings

# Redis database these tests own (FLUSHDB'd before each).
CLI_E2E_REDIS_DB = 12


@pytest.fixture
async def target(fresh_database_url: str, redis_url: str) -> AsyncIterator[str]:
    """A running exchange whose admin key is TEST_ADMIN_API_KEY; its host:port."""
    views_url = redis_url_with_db(redis_url, CLI_E2E_REDIS_DB)
    client = aioredis.from_url(views_url)
    await client.flushdb()
    await client.aclose()
    settings = Settings(
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        http_port=-1,
        database_url=fresh_database_url,
        redis_url=views_url,
        clock_tick_ms=0,
        log_json=True,
        log_level="WARNING",
        admin_api_key=TEST_ADMIN_API_KEY,
    )
    app = ExchangeApp(settings)
    await app.start()
    try:
        yield f"127.0.0.1:{app.grpc_port}"
    finally:
        await app.stop(grace_s=0.5)


PLACE = ["place", "--instrument", "BTC-USD", "--side", "sell", "--price", "45000.00"]
PLACE += ["--quantity", "1.5", "--wait"]


async def _issue(target: str, user: str) -> str:
    argv = ["--api-key", TEST_ADMIN_API_KEY, "keys", "issue", "--user", user]
    status, out, err = await exchange_cli(target, *argv, "--scope", "trade", "--key-only")
    assert (status, err) == (0, "")
    [key] = out
    return key


async def test_an_issued_key_trades_as_its_account_until_revoked(target: str) -> None:
    argv = ["--api-key", TEST_ADMIN_API_KEY, "keys", "issue", "--user", "alice"]
    status, [issued], err = await exchange_json(target, *argv, "--scope", "trade")
    assert (status, err) == (0, "")
    alice_key, key_id = str(issued["api_key"]), str(issued["key_id"])
    assert alice_key.startswith(f"exk_{key_id}_") and issued["scopes"] == ["TRADE"]
    secret = alice_key.removeprefix(f"exk_{key_id}_")  # may hold '_' itself

    # Funded (balance checks are on), the key places an order as alice without naming
    # her, sees what it holds, and lists her orders.
    argv = ["--api-key", TEST_ADMIN_API_KEY, "deposit", "--user", "alice", "--asset", "BTC"]
    status, [deposited], err = await exchange_json(
        target, *argv, "--amount", "2", "--transfer-id", "cli-1"
    )
    assert (status, err, deposited["status"], deposited["amount"]) == (
        0,
        "",
        "COMPLETED",
        "2.00000000",
    )
    status, [placed], err = await exchange_json(target, "--api-key", alice_key, *PLACE)
    assert (status, err) == (0, "")
    order = placed["order"]
    assert (order["user_id"], order["status"]) == ("alice", "OPEN")
    status, balances, _ = await exchange_json(target, "balances", "--api-key", alice_key)
    assert [(b["asset"], b["available"], b["held"]) for b in balances] == [
        ("BTC", "0.50000000", "1.50000000")
    ]
    status, [ledger], _ = await exchange_json(target, "ledger", "--api-key", alice_key)
    assert [(e["cause"], e["available_change"]) for e in ledger["entries"]] == [
        ("HOLD", "-1.50000000"),
        ("DEPOSIT", "2.00000000"),
    ]
    status, [page], _ = await exchange_json(target, "orders", "--api-key", alice_key)
    assert [listed["order_id"] for listed in page["orders"]] == [order["order_id"]]

    # Listed without its secret.
    argv = ["--api-key", TEST_ADMIN_API_KEY, "keys", "list", "--user", "alice"]
    status, listed, _ = await exchange_json(target, *argv)
    assert status == 0
    assert [(key["key_id"], key["user_id"], key["scopes"], key["revoked"]) for key in listed] == [
        (key_id, "alice", ["TRADE"], False)
    ]
    assert listed[0]["last_used_at"] is not None  # it has just placed an order
    assert secret not in str(listed)
    status, out, _ = await exchange_cli(target, *argv)
    assert status == 0 and key_id in "\n".join(out)
    assert secret not in "\n".join(out)

    # Revoked: refused at once, with a message saying so and exit status 1.
    argv = ["--api-key", TEST_ADMIN_API_KEY, "keys", "revoke", key_id]
    status, out, err = await exchange_cli(target, *argv)
    assert (status, out, err) == (0, [f"revoked key {key_id}"], "")
    status, out, err = await exchange_cli(target, "--api-key", alice_key, *PLACE)
    assert (status, out) == (1, [])
    assert err.startswith("error: UNAUTHENTICATED: ")
    assert "hint: the service does not accept this API key: it is unknown, revoked" in err


async def test_no_key_and_a_key_short_of_a_scope_are_told_what_to_do(target: str) -> None:
    status, out, err = await exchange_cli(target, "orders")
    assert (status, out) == (1, [])
    assert err.startswith("error: UNAUTHENTICATED: ")
    assert "hint: no API key given: pass --api-key or set EXCHANGE_API_KEY" in err

    # A trade key may not issue keys, nor act for another account.
    bob_key = await _issue(target, "bob")
    argv = ["--api-key", bob_key, "keys", "issue", "--user", "bob", "--scope", "admin"]
    status, out, err = await exchange_cli(target, *argv)
    assert (status, out) == (1, [])
    assert err.startswith("error: PERMISSION_DENIED: ")
    assert "hint: this API key may not do that" in err
    status, _, err = await exchange_cli(target, "--api-key", bob_key, *PLACE, "--user", "eve")
    assert status == 1 and err.startswith("error: PERMISSION_DENIED: ")

    # The key from the environment works as --api-key does.
    status, [placed], err = await exchange_json(
        target, *PLACE, environ={"EXCHANGE_API_KEY": bob_key}
    )
    assert (status, err, placed["order"]["user_id"]) == (0, "", "bob")


@pytest.mark.parametrize("mode", ["unary", "stream"])
async def test_load_runs_on_keys_it_issues_and_revokes(target: str, mode: str) -> None:
    argv = ["--api-key", TEST_ADMIN_API_KEY, "load", "--orders", "60", "--users", "4"]
    argv += ["--concurrency", "3", "--mode", mode, "--no-progress"]
    status, [report], err = await exchange_json(target, *argv)
    assert (status, err) == (0, "")
    assert (report["accepted"], report["refused"], report["errors_by_code"]) == (60, 0, {})
    admin = ["--api-key", TEST_ADMIN_API_KEY, "keys", "list"]
    status, listed, _ = await exchange_json(target, *admin)
    run_keys = [key for key in listed if str(key["user_id"]).startswith("load-user-")]
    assert len(run_keys) == 4 and all(key["revoked"] for key in run_keys)


async def test_load_without_an_admin_key_says_it_needs_one(target: str) -> None:
    trade_key = await _issue(target, "carol")
    argv = ["--api-key", trade_key, "load", "--orders", "5", "--no-progress"]
    status, out, err = await exchange_cli(target, *argv)
    assert (status, out) == (1, [])
    assert err.startswith("error: PERMISSION_DENIED: ")
    assert "the load generator issues a trade key per simulated user" in err


# --- `make run`'s admin key: made on the first start, reused by the next --------------------


@contextlib.asynccontextmanager
async def make_run_service(
    database_url: str, redis_url: str, key_file: Path, log_file: Path
) -> AsyncIterator[tuple[str, list[str]]]:
    """`python -m server` as `make run` starts it (no ADMIN_API_KEY, ADMIN_API_KEY_FILE
    set): its target and the lines of its start banner; stopped on the way out."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("ADMIN_API_KEY", "EVENT_STORE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT")
    }
    env.update(
        PYTHONPATH=str(REPOSITORY),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        GRPC_HOST="127.0.0.1",
        GRPC_PORT="0",
        METRICS_PORT="-1",
        HTTP_PORT="-1",
        CLOCK_TICK_MS="0",
        LOG_LEVEL="INFO",
        LOG_JSON="1",
        ADMIN_API_KEY_FILE=str(key_file),
    )
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            cwd=REPOSITORY,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.PIPE,
        )
    assert process.stderr is not None
    banner: list[str] = []
    try:
        while not banner or banner[-1] != "  Ctrl-C stops it.":
            line = await asyncio.wait_for(process.stderr.readline(), 120)
            assert line, "the service exited before serving:\n" + "\n".join(banner)
            banner.append(line.decode().rstrip())
        [port] = [
            match.group(1) for line in banner if (match := re.search(r"gRPC on \S+:(\d+)", line))
        ]
        yield f"127.0.0.1:{port}", banner
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 60)


async def test_make_run_makes_an_admin_key_on_first_start_and_reuses_it(
    fresh_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "data" / "admin-api-key"  # its directory does not exist yet
    views_url = redis_url_with_db(redis_url, CLI_E2E_REDIS_DB)
    log_file = tmp_path / "service.log"
    async with make_run_service(fresh_database_url, views_url, key_file, log_file) as (
        target,
        banner,
    ):
        assert f"  admin API key: in {key_file} (created now; mode 0600)" in banner
        assert f"  try: export EXCHANGE_API_KEY=$(cat {key_file})" in banner
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        admin_key = key_file.read_text().strip()
        assert len(admin_key) >= 32
        as_admin = {"EXCHANGE_API_KEY": admin_key}
        argv = ["keys", "issue", "--user", "dora", "--scope", "trade"]
        status, [issued], err = await exchange_json(target, *argv, environ=as_admin)
        assert (status, err) == (0, "")

    async with make_run_service(fresh_database_url, views_url, key_file, log_file) as (
        target,
        banner,
    ):
        assert f"  admin API key: in {key_file} (from an earlier start; mode 0600)" in banner
        assert key_file.read_text().strip() == admin_key
        status, listed, _ = await exchange_json(target, "keys", "list", environ=as_admin)
        assert (status, [key["key_id"] for key in listed]) == (0, [issued["key_id"]])
    # Only the file's path is ever shown: never the key, in the banner or the log.
    assert admin_key not in "\n".join(banner)
    assert admin_key not in log_file.read_text()
