"""Where the CLI's results go: JSON lines on stdout, or rich tables and lines.

Every value shown goes through `DisplayPrecision` first (amounts at their instrument's
precision), so the JSON and the human output show the same numbers. The console takes
strings literally (no rich markup, no emoji codes): ids cannot restyle the output, and
`clients.render` escapes what they could do to the terminal itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, RenderableType

from clients import render
from clients.precision import DisplayPrecision

# Piped output has no width to fit; 80 columns would truncate ids and times.
PIPED_OUTPUT_WIDTH = 250


class Output:
    def __init__(self, as_json: bool, precision: DisplayPrecision | None = None) -> None:
        self.as_json = as_json
        self.precision = precision or DisplayPrecision()
        self.console = Console(
            file=sys.stdout, highlight=False, soft_wrap=True, markup=False, emoji=False
        )
        if not self.console.is_terminal:
            self.console.width = PIPED_OUTPUT_WIDTH

    def show(
        self, value: Any, human: Callable[[Any], RenderableType] | RenderableType | None = None
    ) -> None:
        """`value` as one JSON line, or as `human(value)` (or `human`, or `value`) for
        people; `human` gets the value at display precision."""
        value = self.precision.apply(value)
        if self.as_json:
            print(render.json_line(value), flush=True)
        elif callable(human):
            self.console.print(human(value))
        else:
            self.console.print(human if human is not None else value)

    def note(self, text: str) -> None:
        """A line for people only (not in JSON output); callers escape what they quote."""
        if not self.as_json:
            self.console.print(text)
