"""Owner-only access: which account a call acts on or reads, given its key.

The account comes from the key. A request's `user_id` may be empty (the key's account);
naming another account is PERMISSION_DENIED, except that an admin key reads every account
and cancels any order. Nobody, not even an admin, places or amends for another account.
"""

from __future__ import annotations

from server.errors import PermissionDenied, Unauthenticated
from server.identity.context import Principal, current_principal
from server.request_checks import optional_id


def caller() -> Principal:
    """The current call's principal; a call that reached a servicer without one (it should
    not: the interceptor lets only public market data through keyless) is refused."""
    principal = current_principal()
    if principal is None:
        raise Unauthenticated("an API key is required")
    return principal


def _other_account(requested_user_id: str) -> PermissionDenied:
    return PermissionDenied(f"this API key may not act for user_id {requested_user_id[:128]!r}")


def acting_account(requested_user_id: str) -> str:
    """The account a command acts for: the key's (place, amend, cancel-all). A malformed
    user_id is INVALID_ARGUMENT first, as before keys."""
    optional_id("user_id", requested_user_id)
    principal = caller()
    if requested_user_id and requested_user_id != principal.user_id:
        raise _other_account(requested_user_id)
    return principal.user_id


def readable_account(requested_user_id: str) -> str:
    """The account a query reads: the key's, or any an admin names."""
    optional_id("user_id", requested_user_id)
    principal = caller()
    if not requested_user_id:
        return principal.user_id
    if requested_user_id != principal.user_id and not principal.is_admin:
        raise _other_account(requested_user_id)
    return requested_user_id


def order_owner_filter(requested_user_id: str) -> str | None:
    """The owner an order must have to be read or cancelled by this call: the key's account
    (another's order is then NOT_FOUND), the account an admin names, or None (an admin
    without a user_id: any owner)."""
    principal = caller()
    if principal.is_admin and not requested_user_id:
        return None
    return readable_account(requested_user_id)
