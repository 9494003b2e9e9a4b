"""Typed errors raised at the domain's edges (parsing and converting input).

Business rejections inside the engine are never exceptions: they are events with a reason
code. `InvalidField` is only for input that cannot even be turned into a command.
"""

from __future__ import annotations


class InvalidField(ValueError):
    """A field of an input could not be accepted.

    `field` names the field (e.g. ``price``), `reason` is a short upper-case code such as
    ``OFF_TICK_GRID``, ``NOT_POSITIVE``, ``MALFORMED``, ``REQUIRED``; `message` is for people.
    """

    def __init__(self, field: str, reason: str, message: str = "") -> None:
        self.field = field
        self.reason = reason
        self.message = message or f"{field}: {reason}"
        super().__init__(f"{field}: {reason}: {self.message}")
