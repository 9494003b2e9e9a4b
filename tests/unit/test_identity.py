"""Identities on the in-memory log: key text and hash, the key ring folded from the log
(and following it), the admin operations, the scope of every RPC, owner-only rules."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from clients.generated.exchange import v1 as exchange_v1
from server.errors import InvalidArgument, PermissionDenied, Unauthenticated
from server.eventstore import EventStore
from server.identity.access import acting_account, order_owner_filter, readable_account
from server.identity.admin import ApiKeyAdmin, KeyAlreadyRevoked, KeyNotFound
from server.identity.context import Principal, set_principal
from server.identity.keyring import BootstrapKeyTooShort, KeyRing, KeyRingFollower
from server.identity.keys import MalformedKey, new_key, parse_key, secret_sha256
from server.identity.scopes import REQUIRED_SCOPE, Scope, may_call, needs_no_key, required_scope

ADMIN_KEY = "a-bootstrap-admin-key-of-32-chars-or-more"
ADMIN = Principal("bootstrap", "admin", frozenset({Scope.ADMIN}))


def _descriptor_methods() -> list[str]:
    paths = []
    for info in pkgutil.iter_modules(exchange_v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{exchange_v1.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                paths += [f"/{service.full_name}/{method.name}" for method in service.methods]
    return paths


def test_every_rpc_of_every_service_has_a_scope_and_an_unknown_one_is_admin_only() -> None:
    methods = _descriptor_methods()
    assert [path for path in methods if path not in REQUIRED_SCOPE] == []
    assert sorted(REQUIRED_SCOPE) == sorted(methods)
    assert required_scope("/exchange.v1.NewService/Anything") is Scope.ADMIN


def test_trade_and_admin_imply_read_and_only_admin_cancels_besides_trade() -> None:
    read, trade, admin = (frozenset({scope}) for scope in (Scope.READ, Scope.TRADE, Scope.ADMIN))
    cancel, place = (
        "/exchange.v1.OrderCommandService/CancelOrder",
        ("/exchange.v1.OrderCommandService/PlaceOrder"),
    )
    get = "/exchange.v1.OrderQueryService/GetOrder"
    issue = "/exchange.v1.AdminService/IssueApiKey"
    assert [may_call(scopes, get) for scopes in (read, trade, admin)] == [True] * 3
    assert [may_call(scopes, place) for scopes in (read, trade, admin)] == [False, True, False]
    assert [may_call(scopes, cancel) for scopes in (read, trade, admin)] == [False, True, True]
    assert [may_call(scopes, issue) for scopes in (read, trade, admin)] == [False, False, True]


def test_health_reflection_and_public_market_data_need_no_key() -> None:
    assert needs_no_key("/grpc.health.v1.Health/Check", False)
    assert needs_no_key("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", False)
    book = "/exchange.v1.OrderQueryService/GetOrderBook"
    assert (needs_no_key(book, False), needs_no_key(book, True)) == (False, True)
    assert not needs_no_key("/exchange.v1.OrderQueryService/GetOrder", True)


def test_a_key_text_parses_back_and_anything_else_is_malformed() -> None:
    key = new_key()
    assert len(key.key_id) == 16 and len(key.secret) == 43
    assert parse_key(key.text) == (key.key_id, key.secret)
    for text in ("", "Bearer", key.text + "x", key.text.upper(), "exk__", "x" * 10_000):
        with pytest.raises(MalformedKey):
            parse_key(text)


def test_a_bootstrap_key_shorter_than_32_characters_is_refused() -> None:
    with pytest.raises(BootstrapKeyTooShort, match="at least 32"):
        KeyRing("x" * 31)
    assert KeyRing("x" * 32).authenticate("x" * 32) == ADMIN
    with pytest.raises(Unauthenticated):
        KeyRing("").authenticate("")


async def test_issued_keys_authenticate_until_revoked_and_a_new_ring_rebuilds_from_the_log(
    store: EventStore,
) -> None:
    ring = KeyRing(ADMIN_KEY)
    keys = ApiKeyAdmin(store, ring)
    key = await keys.issue(ADMIN, "alice", [Scope.TRADE])
    assert ring.authenticate(key.text) == Principal(key.key_id, "alice", frozenset({Scope.TRADE}))
    with pytest.raises(Unauthenticated):
        ring.authenticate(key.text[:-1] + ("A" if key.text[-1] != "A" else "B"))

    rebuilt = KeyRing()
    await KeyRingFollower(store, rebuilt).load()
    assert rebuilt.authenticate(key.text).user_id == "alice"
    assert rebuilt.get(key.key_id) is not None
    assert rebuilt.get(key.key_id).secret_sha256 == secret_sha256(key.secret)  # type: ignore[union-attr]

    await keys.revoke(ADMIN, key.key_id)
    with pytest.raises(Unauthenticated, match="revoked"):
        ring.authenticate(key.text)
    head = await store.head_position()
    with pytest.raises(KeyAlreadyRevoked):
        await keys.revoke(ADMIN, key.key_id)
    with pytest.raises(KeyNotFound):
        await keys.revoke(ADMIN, "0123456789abcdef")
    with pytest.raises(InvalidArgument):
        await keys.issue(ADMIN, "alice", [])
    assert await store.head_position() == head


async def test_a_follower_applies_keys_issued_elsewhere(store: EventStore) -> None:
    elsewhere = ApiKeyAdmin(store, KeyRing())
    ring = KeyRing()
    follower = KeyRingFollower(store, ring)
    await follower.load()
    follower.start()
    try:
        key = await elsewhere.issue(ADMIN, "bob", [Scope.READ])
        issued = (await store.read_stream(f"api-key-{key.key_id}"))[-1]
        assert await follower.wait_until(issued.position, 5)
        assert ring.authenticate(key.text).user_id == "bob"
        await elsewhere.revoke(ADMIN, key.key_id)
        revoked = (await store.read_stream(f"api-key-{key.key_id}"))[-1]
        assert await follower.wait_until(revoked.position, 5)
        with pytest.raises(Unauthenticated):
            ring.authenticate(key.text)
    finally:
        await follower.stop()


def test_the_account_comes_from_the_key() -> None:
    set_principal(Principal("k1", "alice", frozenset({Scope.TRADE})))
    assert (acting_account(""), acting_account("alice")) == ("alice", "alice")
    assert (readable_account(""), order_owner_filter("")) == ("alice", "alice")
    for refused in (lambda: acting_account("bob"), lambda: readable_account("bob")):
        with pytest.raises(PermissionDenied):
            refused()
    with pytest.raises(InvalidArgument):
        acting_account("a b")
    set_principal(ADMIN)
    assert (readable_account("bob"), order_owner_filter(""), order_owner_filter("bob")) == (
        "bob",
        None,
        "bob",
    )
    with pytest.raises(PermissionDenied):
        acting_account("bob")
    set_principal(None)
    with pytest.raises(Unauthenticated):
        acting_account("")
