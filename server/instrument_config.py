"""Loads the venue configuration file (JSON): its instruments and its assets.

The file holds ``{"assets": {"BTC": 8, ...}, "instruments": [{"symbol", "tick_size",
"lot_size", "min_quantity"?, "base"?, "quote"?, "maker_fee_bps"?, "taker_fee_bps"?}]}``
with decimals as strings, so no binary float ever touches a tick or lot size. An
instrument's base and quote are read off a ``BASE-QUOTE`` symbol when left out; an asset an
instrument trades that ``assets`` does not list has the domain's default precision.

With accounts on (``check_for_accounts``), every instrument must trade named assets and a
tick x lot must be a whole number of the quote asset's units (a lot, of the base's):
otherwise the service refuses to start with a message naming the instrument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson

from domain.accounts import InstrumentMoney
from domain.assets import DEFAULT_PRECISION, check_asset, check_precision
from domain.errors import InvalidField
from domain.instruments import Instrument
from server.settings import Settings

__all__ = [
    "DEFAULT_PRECISION",
    "InstrumentConfigError",
    "VenueConfig",
    "check_for_accounts",
    "load_instruments",
    "load_venue",
    "load_venue_for",
]


class InstrumentConfigError(ValueError):
    """The instrument file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class VenueConfig:
    """The instruments by symbol and every asset's precision (those the instruments trade
    included)."""

    instruments: dict[str, Instrument]
    assets: dict[str, int] = field(default_factory=dict)


def _decimal(entry: dict[str, object], key: str, path: Path) -> Decimal:
    value = entry.get(key)
    if not isinstance(value, str):
        raise InstrumentConfigError(f"{path}: {entry.get('symbol')!r}: {key} must be a string")
    return Decimal(value)


def _assets(document: dict[str, object], path: Path) -> dict[str, int]:
    listed = document.get("assets", {})
    if not isinstance(listed, dict):
        raise InstrumentConfigError(f"{path}: 'assets' must map asset codes to precisions")
    assets: dict[str, int] = {}
    for code, precision in listed.items():
        try:
            assets[check_asset("asset", code)] = check_precision("precision", precision)
        except InvalidField as error:
            raise InstrumentConfigError(f"{path}: asset {code!r}: {error.message}") from None
    return assets


def _instrument(entry: dict[str, object], path: Path) -> Instrument:
    symbol = entry.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise InstrumentConfigError(f"{path}: every instrument needs a symbol")
    min_quantity = entry.get("min_quantity")
    base, quote = entry.get("base"), entry.get("quote")
    try:
        instrument = Instrument(
            symbol=symbol,
            tick_size=_decimal(entry, "tick_size", path),
            lot_size=_decimal(entry, "lot_size", path),
            min_quantity=_decimal(entry, "min_quantity", path) if min_quantity else None,
            base=None if base is None else check_asset("base", base),
            quote=None if quote is None else check_asset("quote", quote),
            maker_fee_bps=entry.get("maker_fee_bps", 0),  # type: ignore[arg-type]
            taker_fee_bps=entry.get("taker_fee_bps", 0),  # type: ignore[arg-type]
        )
    except InvalidField as error:
        raise InstrumentConfigError(f"{path}: {symbol}: {error.message}") from None
    try:
        return instrument.with_assets()
    except InvalidField:
        return instrument  # fine without accounts; check_for_accounts refuses it with them


def load_venue(path: Path) -> VenueConfig:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise InstrumentConfigError(f"cannot read instruments from {path}: {error}") from error
    entries = document.get("instruments") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InstrumentConfigError(f"{path}: expected a non-empty 'instruments' list")
    assets = _assets(document, path)
    instruments: dict[str, Instrument] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise InstrumentConfigError(f"{path}: every instrument is an object")
        instrument = _instrument(entry, path)
        if instrument.symbol in instruments:
            raise InstrumentConfigError(f"{path}: {instrument.symbol} is listed twice")
        instruments[instrument.symbol] = instrument
        for asset in (instrument.base, instrument.quote):
            if asset is not None:
                assets.setdefault(asset, DEFAULT_PRECISION)
    return VenueConfig(instruments, assets)


def check_for_accounts(venue: VenueConfig, path: Path) -> None:
    """Refuse (InstrumentConfigError naming the instrument) a configuration the engine
    could not keep balances for: an instrument without assets, or whose tick x lot (or
    lot) is finer than its quote (or base) asset's unit."""
    for symbol, instrument in sorted(venue.instruments.items()):
        if instrument.base is None:
            raise InstrumentConfigError(
                f"{path}: instrument {symbol} needs base and quote assets (or a BASE-QUOTE "
                "symbol) with ACCOUNTS_ENABLED=1"
            )
        try:
            InstrumentMoney(instrument, venue.assets)
        except InvalidField as error:
            raise InstrumentConfigError(
                f"{path}: instrument {symbol}: {error.message}, not a whole number of the "
                "asset's unit (ACCOUNTS_ENABLED=1 needs one)"
            ) from None


def load_instruments(path: Path) -> dict[str, Instrument]:
    """The instruments of the file, by symbol."""
    return load_venue(path).instruments


def load_venue_for(settings: Settings) -> VenueConfig:
    """The venue file the settings name, checked for accounts when they are on."""
    venue = load_venue(settings.instruments_file)
    if settings.accounts_enabled:
        check_for_accounts(venue, settings.instruments_file)
    return venue
