"""Who may call what, for every transport: the key a call presents, and the principal it
stands for when it may call the method.

A method is named as in the scope table (``server.identity.scopes``): gRPC calls by their
own path, HTTP routes by the RPC they stand for, so both follow one table. No key, or an
unknown, revoked or malformed one: UNAUTHENTICATED. A key without the method's scope:
PERMISSION_DENIED. Each answer is counted in ``exchange_authentications_total``.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.errors import PermissionDenied, Refused, Unauthenticated
from server.identity.context import Principal
from server.identity.keyring import KeyRing
from server.identity.scopes import may_call, needs_no_key, required_scope
from server.observability import metrics

BEARER = "bearer "


def presented_key(values: Sequence[str | bytes]) -> str:
    """The key text of a call's `authorization: Bearer <key>` header (its values)."""
    if not values:
        raise Unauthenticated("an API key is required (authorization: Bearer <key>)")
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header")
    value = values[0]
    if isinstance(value, bytes):  # only a -bin gRPC key carries bytes; be safe all the same
        value = value.decode("utf-8", "replace")
    if not value[: len(BEARER)].lower() == BEARER:
        raise Unauthenticated("authorization must be 'Bearer <key>'")
    return str(value[len(BEARER) :].strip())


def authorize(
    ring: KeyRing,
    method: str,
    authorization: Sequence[str | bytes],
    public_market_data: bool,
) -> Principal | None:
    """The caller, when `method` needs one and the key may call it (None: no key needed);
    else Refused."""
    if needs_no_key(method, public_market_data):
        metrics.record_authentication("public")
        return None
    try:
        principal = ring.authenticate(presented_key(authorization))
    except Refused:
        metrics.record_authentication("unauthenticated")
        raise
    if not may_call(principal.scopes, method):
        metrics.record_authentication("permission_denied")
        scope = required_scope(method)
        raise PermissionDenied(f"this API key lacks the {scope.value!r} scope")
    metrics.record_authentication("ok")
    return principal
