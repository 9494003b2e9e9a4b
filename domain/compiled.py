"""Which build of the engine is running (placeholder until the compiled build lands)."""

from __future__ import annotations


def active_build() -> str:
    return "pure"
