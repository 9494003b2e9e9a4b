"""`python -m domain.replay`: JSON lines of commands on stdin -> JSON lines of events on stdout.

Each input line is one command dict (see `domain.codec`); the events it caused are written
in order, one JSON object per line. A malformed line is reported on stderr with its line
number and the field at fault, and the replay goes on with the next line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import BinaryIO, TextIO

import orjson

from domain.codec import command_from_dict, event_to_dict
from domain.commands import AmendOrder, Command
from domain.engine import MatchingEngine
from domain.errors import InvalidField


def _decode(line_number: int, raw: bytes, engine: MatchingEngine, errors: TextIO) -> Command | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        errors.write(f"line {line_number}: field (line): MALFORMED: not valid JSON ({error})\n")
        return None
    if not isinstance(data, dict):
        errors.write(f"line {line_number}: field (line): MALFORMED: not a JSON object\n")
        return None
    try:
        return command_from_dict(data, engine.instruments, engine.instrument_of)
    except InvalidField as error:
        if error.field == "order_id" and error.reason == "UNKNOWN_ORDER":
            # An amend of an order that is not open: the engine answers with AmendRejected
            # (UNKNOWN_ORDER or ORDER_CLOSED); its decimals never matter.
            return AmendOrder(data["order_id"])
        errors.write(f"line {line_number}: field {error.field}: {error.reason}: {error.message}\n")
        return None


def replay(lines: Iterable[bytes], output: BinaryIO, errors: TextIO) -> int:
    """Run every line through a fresh engine; return the number of malformed lines."""
    engine = MatchingEngine()
    instruments = engine.instruments
    dumps = orjson.dumps
    write = output.write
    malformed = 0
    for line_number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        command = _decode(line_number, raw, engine, errors)
        if command is None:
            malformed += 1
            continue
        for event in engine.handle(command):
            write(dumps(event_to_dict(event, instruments)))
            write(b"\n")
    output.flush()
    return malformed


def main(argv: list[str] | None = None) -> int:
    replay(sys.stdin.buffer, sys.stdout.buffer, sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
