"""Whose limits a call spends: ``limit_key_of(context)``.

Today that is the caller's address (without its port, so one host's connections share one
budget). Once calls carry identities (API keys), it is the key's id: the switch is
``_principal_key``, the one place that will read the authenticated principal.
"""

from __future__ import annotations

from typing import Any

UNKNOWN_PEER = "unknown"


def _principal_key() -> str | None:
    """The authenticated caller's key id, or None while calls carry no identity.

    THE SWITCH to per-key limits: when ``server.identity.context.current_principal()``
    exists, return its ``key_id`` here (None for an unauthenticated call, which then falls
    back to the peer's address).
    """
    return None


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
