"""API keys on the client side, against the canned server: the typed client shows its key on
every call, `exchange keys ...` prints what AdminService answered, `--api-key` and
$EXCHANGE_API_KEY reach every command, and the load generator places each order with a
trade key of its own user. (Against the real service: test_cli_keys_e2e.py.)"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import grpc
import pytest
from canned_exchange import CannedExchange
from cli_runs import run_json, run_text

from clients.cli import load_plan_from_arguments, parse_arguments
from clients.client import ExchangeClient
from clients.enums import Scope, Side
from clients.errors import make_error
from clients.generated.exchange.v1 import admin_service_pb2
from clients.models import ApiKey, IssuedApiKey, NewOrder
from clients.render import access_hint

# --- the typed client ------------------------------------------------------------------------


async def test_every_call_carries_the_clients_key(canned_exchange: CannedExchange) -> None:
    async with ExchangeClient.connect(canned_exchange.target, api_key="exk_k_s") as client:
        await client.ping()
        assert canned_exchange.diagnostics.last_metadata["authorization"] == "Bearer exk_k_s"
        order = NewOrder(
            user_id="key-unary",
            instrument="BTC-USD",
            side=Side.BUY,
            price=Decimal("1.00"),
            quantity=Decimal("1"),
        )
        await client.place_order(order)
        async with client.order_entry() as entry:  # the canned stream answers in pairs
            answer = await entry.submit(dataclasses.replace(order, user_id="key-stream"))
        await answer
    by_user = canned_exchange.commands.authorization_by_user
    assert by_user["key-unary"] == by_user["key-stream"] == {"Bearer exk_k_s"}


async def test_a_client_without_a_key_sends_no_authorization(
    canned_exchange: CannedExchange,
) -> None:
    async with ExchangeClient.connect(canned_exchange.target) as client:
        await client.ping()
    assert "authorization" not in canned_exchange.diagnostics.last_metadata


async def test_admin_calls_issue_list_and_revoke(canned_exchange: CannedExchange) -> None:
    async with ExchangeClient.connect(canned_exchange.target, api_key="admin") as client:
        issued = await client.issue_api_key("typed-1", (Scope.TRADE, Scope.READ))
        key_id = issued.key_id
        assert issued == IssuedApiKey(key_id, canned_exchange.admin.api_keys[key_id])
        assert issued.api_key not in repr(issued)  # a logged value does not leak the key
        assert list(canned_exchange.admin.issued[key_id].scopes) == [
            admin_service_pb2.SCOPE_TRADE,
            admin_service_pb2.SCOPE_READ,
        ]
        await client.revoke_api_key(key_id)
        [listed] = await client.list_api_keys("typed-1")
    assert listed == ApiKey(
        key_id=key_id,
        user_id="typed-1",
        scopes=(Scope.TRADE, Scope.READ),
        created_at=listed.created_at,
        last_used_at=None,
        revoked=True,
    )
    assert listed.created_at is not None and listed.created_at.year == 2026


# --- CLI: where the key comes from -----------------------------------------------------------


def test_api_key_from_environment_flag_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    assert parse_arguments(["ping"]).api_key == ""
    monkeypatch.setenv("EXCHANGE_API_KEY", "from-env")
    assert parse_arguments(["ping"]).api_key == "from-env"
    assert parse_arguments(["--api-key", "flag", "ping"]).api_key == "flag"
    assert parse_arguments(["orders", "--api-key", "after"]).api_key == "after"
    assert parse_arguments(["keys", "list", "--api-key", "after"]).api_key == "after"


def test_user_may_be_left_out_the_keys_account() -> None:
    assert parse_arguments(["orders"]).user_id == ""
    assert parse_arguments(["cancel-all"]).user_id == ""
    assert parse_arguments(["watch", "orders"]).user_id == ""


def test_load_uses_the_admin_key_else_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADMIN_API_KEY", raising=False)
    monkeypatch.setenv("EXCHANGE_API_KEY", "exchange-key")
    assert load_plan_from_arguments(parse_arguments(["load"])).admin_api_key == "exchange-key"
    monkeypatch.setenv("ADMIN_API_KEY", "admin-env")
    assert load_plan_from_arguments(parse_arguments(["load"])).admin_api_key == "admin-env"
    argv = ["load", "--admin-api-key", "admin-flag"]
    assert load_plan_from_arguments(parse_arguments(argv)).admin_api_key == "admin-flag"


async def test_the_cli_sends_its_key(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = await run_text(canned_exchange.target, capsys, "ping", "--api-key", "k-1")
    assert (status, err) == (0, "")
    assert canned_exchange.diagnostics.last_metadata["authorization"] == "Bearer k-1"


# --- CLI: keys issue / list / revoke ---------------------------------------------------------


async def test_keys_issue_prints_the_key_once_with_its_id(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "issue", "--user", "cli-1", "--scope", "trade", "--scope", "read"]
    status, out, err = await run_text(canned_exchange.target, capsys, *argv)
    key_id = next(reversed(canned_exchange.admin.issued))
    assert (status, err) == (0, "")
    assert out == [
        f"key_id   {key_id}",
        "user_id  cli-1",
        "scopes   TRADE,READ",
        f"api_key  {canned_exchange.admin.api_keys[key_id]}",
        "The key is shown only now: the service keeps only a hash of it.",
    ]
    status, [issued], _ = await run_json(canned_exchange.target, capsys, *argv)
    key_id = next(reversed(canned_exchange.admin.issued))
    assert issued == {
        "key_id": key_id,
        "user_id": "cli-1",
        "scopes": ["TRADE", "READ"],
        "api_key": canned_exchange.admin.api_keys[key_id],
    }


async def test_keys_issue_key_only_prints_just_the_key(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "issue", "--user", "cli-2", "--scope", "TRADE", "--key-only"]
    status, out, err = await run_text(canned_exchange.target, capsys, *argv)
    key_id = next(reversed(canned_exchange.admin.issued))
    assert (status, out, err) == (0, [canned_exchange.admin.api_keys[key_id]], "")


def test_keys_issue_needs_a_known_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_arguments(["keys", "issue", "--user", "u", "--scope", "root"])
    assert "'root' is not one of READ, TRADE, ADMIN" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_arguments(["keys", "issue", "--user", "u"])
    assert "the following arguments are required: --scope" in capsys.readouterr().err


async def test_keys_list_shows_no_secret_and_revoke_says_what_it_did(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "issue", "--user", "cli-3", "--scope", "read", "--key-only"]
    status, [secret], _ = await run_text(canned_exchange.target, capsys, *argv)
    key_id = next(reversed(canned_exchange.admin.issued))
    status, out, err = await run_text(canned_exchange.target, capsys, "keys", "revoke", key_id)
    assert (status, out, err) == (0, [f"revoked key {key_id}"], "")
    status, listed, _ = await run_json(
        canned_exchange.target, capsys, "keys", "list", "--user", "cli-3"
    )
    assert listed == [
        {
            "key_id": key_id,
            "user_id": "cli-3",
            "scopes": ["READ"],
            "created_at": "2026-01-02T03:04:05Z",
            "last_used_at": None,
            "revoked": True,
        }
    ]
    status, out, _ = await run_text(canned_exchange.target, capsys, "keys", "list")
    assert status == 0 and any(key_id in line and "yes" in line for line in out)
    assert not any(secret in line for line in out)


async def test_revoking_an_unknown_key_fails_with_status_1(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = await run_text(canned_exchange.target, capsys, "keys", "revoke", "nope")
    assert (status, err) == (1, "error: NOT_FOUND: no key nope\n")


# --- CLI: what a refused key is told ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "key_given", "hint_start"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, False, "no API key given: pass --api-key or set"),
        (grpc.StatusCode.UNAUTHENTICATED, True, "the service does not accept this API key"),
        (grpc.StatusCode.PERMISSION_DENIED, True, "this API key may not do that"),
        (grpc.StatusCode.NOT_FOUND, True, ""),
    ],
)
def test_access_hints(code: grpc.StatusCode, key_given: bool, hint_start: str) -> None:
    hint = access_hint(make_error(code, "refused"), key_given=key_given)
    assert hint.startswith(hint_start) and bool(hint) == bool(hint_start)


# --- load generator: one trade key per simulated user ----------------------------------------


@pytest.mark.parametrize("mode", ["unary", "stream"])
async def test_load_places_each_order_with_a_trade_key_of_its_user(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    admin = canned_exchange.admin
    issued_before = set(admin.issued)
    users = [f"load-user-{number}" for number in range(3)]
    for user in users:
        canned_exchange.commands.authorization_by_user.pop(user, None)
    argv = ["load", "--orders", "30", "--users", "3", "--concurrency", "3", "--mode", mode]
    status, [report], _ = await run_json(
        canned_exchange.target, capsys, *argv, "--no-progress", "--api-key", "admin"
    )
    assert (status, report["accepted"]) == (0, 30)
    run_keys = [key_id for key_id in admin.issued if key_id not in issued_before]
    assert sorted(admin.issued[key_id].user_id for key_id in run_keys) == users
    assert all(
        list(admin.issued[key_id].scopes) == [admin_service_pb2.SCOPE_TRADE] for key_id in run_keys
    )
    for key_id in run_keys:  # every order of a user came with that user's key, and only it
        user = admin.issued[key_id].user_id
        assert canned_exchange.commands.authorization_by_user[user] == {
            f"Bearer {admin.api_keys[key_id]}"
        }
    assert set(run_keys) <= set(admin.revoked)  # revoked once the run is measured
