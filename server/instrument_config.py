"""Loads the instrument configuration file (JSON) into domain Instruments, keyed by symbol.

The file holds ``{"instruments": [{"symbol", "tick_size", "lot_size", "min_quantity"?}]}``
with decimals as strings, so no binary float ever touches a tick or lot size.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson

from domain.instruments import Instrument


class InstrumentConfigError(ValueError):
    """The instrument file is missing, malformed or inconsistent."""


def _decimal(entry: dict[str, object], key: str, path: Path) -> Decimal:
    value = entry.get(key)
    if not isinstance(value, str):
        raise InstrumentConfigError(f"{path}: {entry.get('symbol')!r}: {key} must be a string")
    return Decimal(value)


def load_instruments(path: Path) -> dict[str, Instrument]:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise InstrumentConfigError(f"cannot read instruments from {path}: {error}") from error
    entries = document.get("instruments") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InstrumentConfigError(f"{path}: expected a non-empty 'instruments' list")
    instruments: dict[str, Instrument] = {}
    for entry in entries:
        symbol = entry.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise InstrumentConfigError(f"{path}: every instrument needs a symbol")
        if symbol in instruments:
            raise InstrumentConfigError(f"{path}: {symbol} is listed twice")
        min_quantity = entry.get("min_quantity")
        instruments[symbol] = Instrument(
            symbol=symbol,
            tick_size=_decimal(entry, "tick_size", path),
            lot_size=_decimal(entry, "lot_size", path),
            min_quantity=_decimal(entry, "min_quantity", path) if min_quantity else None,
        )
    return instruments
