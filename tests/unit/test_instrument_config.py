"""The venue configuration file: assets, instruments' assets and fees, and the check that
refuses a file accounts could not keep balances for."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from server.instrument_config import (
    DEFAULT_PRECISION,
    InstrumentConfigError,
    check_for_accounts,
    load_instruments,
    load_venue,
)
from server.settings import DEFAULT_INSTRUMENTS_FILE, Settings


def _file(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "instruments.json"
    path.write_bytes(orjson.dumps(document))
    return path


def test_the_default_file_names_assets_and_passes_the_accounts_check() -> None:
    venue = load_venue(DEFAULT_INSTRUMENTS_FILE)
    assert venue.assets == {"BTC": 8, "ETH": 8, "USD": 8}
    btc = venue.instruments["BTC-USD"]
    assert (btc.base, btc.quote, btc.maker_fee_bps, btc.taker_fee_bps) == ("BTC", "USD", 0, 0)
    check_for_accounts(venue, DEFAULT_INSTRUMENTS_FILE)
    assert load_instruments(DEFAULT_INSTRUMENTS_FILE) == venue.instruments


def test_assets_and_fees_are_read_and_unlisted_assets_get_the_default_precision(
    tmp_path: Path,
) -> None:
    path = _file(
        tmp_path,
        {
            "assets": {"USD": 2},
            "instruments": [
                {
                    "symbol": "BTC-USD",
                    "tick_size": "0.01",
                    "lot_size": "1",
                    "maker_fee_bps": 5,
                    "taker_fee_bps": 10,
                },
                {
                    "symbol": "GOLD",
                    "tick_size": "0.01",
                    "lot_size": "1",
                    "base": "XAU",
                    "quote": "USD",
                },
            ],
        },
    )
    venue = load_venue(path)
    assert venue.assets == {"USD": 2, "BTC": DEFAULT_PRECISION, "XAU": DEFAULT_PRECISION}
    btc = venue.instruments["BTC-USD"]
    assert (btc.base, btc.quote, btc.maker_fee_bps, btc.taker_fee_bps) == ("BTC", "USD", 5, 10)
    assert venue.instruments["GOLD"].base == "XAU"
    check_for_accounts(venue, path)


def test_a_tick_times_lot_finer_than_the_quote_unit_is_refused_naming_the_instrument(
    tmp_path: Path,
) -> None:
    path = _file(
        tmp_path,
        {
            "assets": {"USD": 2, "BTC": 8},
            "instruments": [
                {"symbol": "ETH-USD", "tick_size": "0.01", "lot_size": "1", "base": "BTC"}
                | {"quote": "USD"},
                {"symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001"},
            ],
        },
    )
    venue = load_venue(path)  # fine without accounts
    assert venue.instruments["BTC-USD"].lot_size == Decimal("0.0001")
    with pytest.raises(InstrumentConfigError, match="instrument BTC-USD: tick x lot"):
        check_for_accounts(venue, path)


def test_an_instrument_without_assets_is_refused_with_accounts_only(tmp_path: Path) -> None:
    path = _file(tmp_path, {"instruments": [{"symbol": "XYZ", "tick_size": "1", "lot_size": "1"}]})
    venue = load_venue(path)
    assert venue.instruments["XYZ"].base is None
    with pytest.raises(InstrumentConfigError, match="instrument XYZ needs base and quote"):
        check_for_accounts(venue, path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"assets": {"A" * 17: 2}, "instruments": [{}]}, "asset 'AAAAAAAAAAAAAAAAA'"),
        ({"assets": {"USD": 40}, "instruments": [{}]}, "asset 'USD'"),
        (
            {
                "instruments": [
                    {"symbol": "A-B", "tick_size": "1", "lot_size": "1", "taker_fee_bps": 5000}
                ]
            },
            "A-B: taker_fee_bps must be 0..1000",
        ),
        (
            {"instruments": [{"symbol": "A-B", "tick_size": "1", "lot_size": "1", "base": "A"}]},
            "A-B: an instrument names both base and quote",
        ),
    ],
)
def test_malformed_assets_and_fees_are_refused(
    tmp_path: Path, document: object, message: str
) -> None:
    with pytest.raises(InstrumentConfigError, match=message):
        load_venue(_file(tmp_path, document))


def test_accounts_are_on_unless_turned_off() -> None:
    assert Settings.from_env({}).accounts_enabled is True
    assert Settings.from_env({"ACCOUNTS_ENABLED": "0"}).accounts_enabled is False
