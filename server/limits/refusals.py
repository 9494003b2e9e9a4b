"""The limits' refusals in words, the same on every transport (gRPC's answers add their
status details: ``server.limits.answers``)."""

from __future__ import annotations


def rate_limited_message(retry_after_s: float) -> str:
    return f"rate limit exceeded: retry in {retry_after_s:.3f} s"


def too_many_streams_message(cap: int) -> str:
    return f"too many open streams for this key (at most {cap}); close one first"
