"""Whose limits a call spends: ``limit_key_of(context)``; spending them: ``charge``.

The authenticated caller's API key id; for a call that needs no key (health, reflection,
public market data), the caller's address without its port, so one host's connections
share one budget.
"""

from __future__ import annotations

from typing import Any

from server.identity.context import current_principal
from server.limits.token_bucket import RateLimiter
from server.observability import metrics

UNKNOWN_PEER = "unknown"


def _principal_key() -> str | None:
    """The authenticated caller's key id (set by the auth interceptor, which runs before the
    limits), or None for a call without one."""
    principal = current_principal()
    return None if principal is None else principal.key_id


def peer_host(peer: str | None) -> str:
    """The host part of a gRPC peer string: ``ipv4:10.0.0.1:5312`` -> ``ipv4:10.0.0.1``,
    ``ipv6:[::1]:5312`` -> ``ipv6:[::1]``; ``unix:`` peers are kept whole."""
    if not peer:
        return UNKNOWN_PEER
    scheme, _, address = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return peer
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        return peer
    return f"{scheme}:{host}"


def limit_key_of(context: Any) -> str:
    """The key whose budget this call spends (``context``: a grpc.aio ServicerContext)."""
    principal = _principal_key()
    if principal is not None:
        return principal
    return peer_host(context.peer())


def charge(limiter: RateLimiter, key: str) -> float:
    """Spend one token of `key`'s bucket: 0.0 when the command may go, else the seconds
    until it may (the refusal is counted in ``exchange_rate_limited_total``). Every
    transport charges through here, so a key has one budget whichever it uses."""
    retry_after_s = limiter.take(key)
    if retry_after_s > 0:
        metrics.record_rate_limited(key)
    return retry_after_s
