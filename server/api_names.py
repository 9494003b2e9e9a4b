"""The APIs' names for what the log holds, one rule for every transport."""

from __future__ import annotations

# A stop order that has triggered rests (or matches) like any order: the APIs show it OPEN.
_SHOWN_STATUS = {"TRIGGERED": "OPEN"}


def api_status(status: str) -> str:
    """The status an API shows for an order's status in the log."""
    return _SHOWN_STATUS.get(status, status)
