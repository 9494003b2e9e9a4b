"""`python -m domain.replay`: JSON lines of commands on stdin -> JSON lines of events on stdout.

Each input line is one command dict (see `domain.codec`); the events it caused are written
in order, one JSON object per line. A malformed line is reported on stderr with its line
number and the field at fault, and the replay goes on with the next line.

`--book-deltas` turns on the engine's book level deltas: each command's events then end
with a BookLevelsChanged per instrument whose resting levels it changed. Without the flag
the output is exactly what it always was.

Balances are off until a line turns them on ({"op":"accounts","enabled":true}, before the
first order); then {"op":"deposit"|"withdraw","user_id","asset","amount","transfer_id"}
move funds, orders hold and settle them, and {"op":"instrument_status","symbol","status"}
sets TRADING, CANCEL_ONLY or HALTED. Instruments take optional "base", "quote",
"maker_fee_bps" and "taker_fee_bps"; {"op":"asset","asset","precision"} sets an asset's
precision (8 when not set). A stream without these lines replays exactly as before.
"""

from __future__ import annotations

import argparse
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
        return command_from_dict(data, engine.instruments, engine.instrument_of, engine.assets)
    except InvalidField as error:
        if error.field == "order_id" and error.reason == "UNKNOWN_ORDER":
            # An amend of an order that is not open: the engine answers with AmendRejected
            # (UNKNOWN_ORDER or ORDER_CLOSED); its decimals never matter.
            return AmendOrder(data["order_id"])
        errors.write(f"line {line_number}: field {error.field}: {error.reason}: {error.message}\n")
        return None


def replay(
    lines: Iterable[bytes], output: BinaryIO, errors: TextIO, book_deltas: bool = False
) -> int:
    """Run every line through a fresh engine; return the number of malformed lines."""
    engine = MatchingEngine(book_deltas=book_deltas)
    instruments = engine.instruments
    assets = engine.assets
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
            write(dumps(event_to_dict(event, instruments, assets)))
            write(b"\n")
    output.flush()
    return malformed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m domain.replay", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--book-deltas",
        action="store_true",
        help="also write a BookLevelsChanged after each command that changed a book's levels",
    )
    args = parser.parse_args(argv)
    replay(sys.stdin.buffer, sys.stdout.buffer, sys.stderr, book_deltas=args.book_deltas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
