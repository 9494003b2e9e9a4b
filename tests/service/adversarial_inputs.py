"""Hostile input for every RPC of exchange.v1: catalogues, strategies, and what the door
must refuse.

Requests are built from the message descriptors, so a field added to a proto is driven
without a change here: every field is filled by its name when the name says what it holds
(ids, instruments, decimals, position and page tokens), else by its type. Each field has
good values (that get past its checks to the next ones), bad values (Hypothesis draws
them, around a catalogue of known-hostile ones) and that catalogue itself, which the sweep
sends one by one. A request is a *spec*, a dict of field values that may hold placeholders
resolved when the call is made (a position relative to the log's head, which only the
running service knows).

The oracle: `poisoned_fields` names the fields of a request the door must refuse
(docs/api.md, "What the door accepts"), so a call carrying one never succeeds;
`place_expectation` says what a mostly-valid PlaceOrder with one field spoiled must get.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from server.commands import order_id_for

# Tick and lot sizes of server/instruments.json, the instruments the suite's service runs.
INSTRUMENTS = {
    "BTC-USD": (Decimal("0.01"), Decimal("0.0001")),
    "ETH-USD": (Decimal("0.01"), Decimal("0.001")),
}
USERS = ("alice", "bob", "mallory")
# Orders the suite seeds before the first example (test_adversarial_e2e.seed_orders): their
# ids are known in advance because a client_order_id names its order.
SEED_OPEN = ("alice", "seed-open")
SEED_FILLED_SELL = ("alice", "seed-sell")
SEED_FILLED_BUY = ("bob", "seed-take")
SEED_ORDER_IDS = tuple(
    order_id_for(user, client) for user, client in (SEED_OPEN, SEED_FILLED_SELL, SEED_FILLED_BUY)
)

NOW = datetime.now(UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
LATEST_NS = 7_258_118_400 * 10**9
MAX_ID_LENGTH = 128
MAX_DECIMAL_CHARS = 40
MAX_STEPS = 10**15
ID_FIELDS = frozenset({"user_id", "order_id", "client_order_id", "transfer_id"})
DECIMAL_FIELDS = frozenset({"price", "quantity", "stop_price", "amount"})
_IDENTIFIER = re.compile(r"[!-~]{1,128}")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_POSITION = re.compile(r"[0-9]{1,20}:[0-9]{1,20}")


# -- placeholders and readable values -----------------------------------------------------


class Repeated(str):
    """A long string that shows itself short in reports."""

    unit: str
    times: int

    def __new__(cls, unit: str, times: int) -> Repeated:
        made = super().__new__(cls, unit * times)
        made.unit, made.times = unit, times
        return made

    def __repr__(self) -> str:
        return f"{self.unit!r} * {self.times}"


@dataclass(frozen=True)
class Stamp:
    """A google.protobuf.Timestamp's two fields, set as given (no range check)."""

    seconds: int
    nanos: int = 0

    def __repr__(self) -> str:
        try:
            moment = datetime.fromtimestamp(self.seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            moment = "beyond datetime"
        return f"Stamp({self.seconds}, {self.nanos}) [{moment}]"


@dataclass(frozen=True)
class HeadToken:
    """A min_position token relative to the log's head when the call is made."""

    tx_offset: int
    seq_offset: int

    def resolve(self, head_tx: int, head_seq: int) -> str:
        return f"{head_tx + self.tx_offset}:{head_seq + self.seq_offset}"

    @property
    def beyond(self) -> bool:
        return (self.tx_offset, self.seq_offset) > (0, 0)


def stamp_of(moment: datetime) -> Stamp:
    return Stamp(int(moment.timestamp()), moment.microsecond * 1000)


class PageToken(str):
    """A page token made the way the readers make theirs, shown by what it encodes."""

    text: str

    def __new__(cls, text: str) -> PageToken:
        made = super().__new__(cls, base64.urlsafe_b64encode(text.encode()).decode().rstrip("="))
        made.text = text
        return made

    def __repr__(self) -> str:
        return f"PageToken({self.text!r})"


def _token(text: str) -> str:
    return PageToken(text)


# -- the catalogues: known-hostile values, sent one by one by the sweep --------------------

LONG_TEXT = tuple(Repeated(unit, 10_000) for unit in ("x", "\x00", "é", "\u202e"))
ADVERSARIAL_TEXT = (
    "",
    "\x00",
    "a\x00b",
    "\x07",
    "bell\x07",
    "\x1b[31mred\x1b[0m",
    "\x1b[2J\x1b[H",
    "\u202eevil",
    "rtl\u202eoverride",
    "\u200b",
    "\ufeffbom",
    " ",
    "   ",
    "\t",
    "line\n",
    "two words",
    "ünïcode",
    "\u0661\u0662\u0663",
    "\uff11\uff12",
    "\U0001f600",
    "\x7f",
    "\u0085",
    "BTC-USD\x00",
    " BTC-USD",
    "btc-usd",
    "x" * (MAX_ID_LENGTH + 1),
    *LONG_TEXT,
)
ADVERSARIAL_DECIMAL_TEXT = (
    "  1.0 ",
    "1.0 ",
    "+90000",
    "90_000",
    "\u0661\u0662\u0663",
    "\uff11",
    "1e5",
    "1E+2",
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-1",
    "-0.01",
    "0",
    "0.00",
    "-0",
    "1\n",
    "0x10",
    ".5",
    "1.",
    "--1",
    "1,5",
    "1.0.0",
    "99999999999999999999",
    "100000000000.0001",
    "0.000000000000000000000000000000000000001",
    Repeated("9", 10_000),
    Repeated("0", 10_000),
)
UNKNOWN_ENUM_NUMBERS = (99, -1, 2**31 - 1)
ADVERSARIAL_STAMPS = (
    Stamp(10**12),
    Stamp(-(10**12)),
    Stamp(int(NOW.timestamp()) + 86_400, 2 * 10**9),
    Stamp(int(NOW.timestamp()) + 86_400, -1),
    stamp_of(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    stamp_of(LATEST),
    stamp_of(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    Stamp(0),
    stamp_of(NOW - timedelta(hours=1)),
    stamp_of(NOW - timedelta(days=365 * 20)),
)
GOOD_STAMPS = (
    stamp_of(NOW + timedelta(days=1)),
    stamp_of(NOW + timedelta(days=365 * 50)),
    Stamp(int(LATEST.timestamp()) - 1, 999_999_999),  # the last moment the door takes
)
BAD_POSITION_TOKENS = (
    "zz",
    "1",
    "1:",
    ":1",
    "1:2:3",
    "-1:-1",
    " 1:1",
    "1:1\n",
    "\u0661:\u0661",
    "\uff11:\uff11",
    "1e3:1",
    "0x1:1",
    "999999999999999999999:1",
    "00000000000000000000001:1",
    "\x00",
    Repeated("9", 10_000),
    # Well-formed but beyond the log's head: no wait could ever end.
    "99999999999999999999:99999999999999999999",
    HeadToken(0, 1),
    HeadToken(0, 10**6),
    HeadToken(1, 0),
    HeadToken(10**6, 1),
)
BAD_PAGE_TOKENS = (
    "not-a-token",
    "!!!!",
    "=",
    "\u0661",
    "\x00",
    _token("order:" + "9" * 25),
    _token("trade:" + "9" * 25),
    _token("order:9223372036854775808"),
    _token("trade:9223372036854775808"),
    _token("order:-1"),
    _token("order:\u0661\u0662"),
    _token("trade:\u0661\u0662"),
    _token("order:\u00b2"),
    _token("trade:\u00b2"),
    _token("order:1\x00"),
    _token("order"),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    Repeated("A", 10_000),
    Repeated("!", 10_000),
)
INT32_EDGES = (-1, -(2**31), 2**31 - 1, 1001)
UINT32_EDGES = (2**31, 2**32 - 1)
INT64_EDGES = (-1, -(2**63), 2**63 - 1)
UINT64_EDGES = (0, 2**63, 2**64 - 1)

# -- strategies around the catalogues -------------------------------------------------------

ADVERSARIAL_STRINGS = st.one_of(
    st.sampled_from(ADVERSARIAL_TEXT),
    st.text(max_size=30),  # any valid unicode (proto strings cannot hold surrogates)
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30),
)
VISIBLE_IDS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=24
)
PLAIN_DECIMALS = st.one_of(
    st.decimals(min_value="0.01", max_value=10**7, places=2).map(str),
    st.decimals(min_value="0.0001", max_value=10**4, places=4).map(str),
    st.sampled_from(["1", "1.00", "1.5", "45000.00", "0.001", "0.0001", "10.00"]),
)
ADVERSARIAL_DECIMALS = st.one_of(
    st.sampled_from(ADVERSARIAL_DECIMAL_TEXT),
    st.text(alphabet="0123456789.-+_ eE\n\u0661\uff11", max_size=45),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
)
INT32 = st.one_of(st.sampled_from(INT32_EDGES), st.integers(-(2**31), 2**31 - 1))
UINT32 = st.one_of(st.sampled_from(UINT32_EDGES), st.integers(0, 2**32 - 1))
INT64 = st.one_of(st.sampled_from(INT64_EDGES), st.integers(-(2**63), 2**63 - 1))
UINT64 = st.one_of(st.sampled_from(UINT64_EDGES), st.integers(0, 2**64 - 1))
BAD_STAMPS = st.one_of(st.sampled_from(ADVERSARIAL_STAMPS), st.builds(Stamp, INT64, INT32))
# At or below the head: the views have it (the suite settles after every example).
GOOD_POSITION_TOKENS = st.sampled_from(
    ["", "0:0", "1:1", HeadToken(0, 0), HeadToken(0, -1), HeadToken(-1, 0), HeadToken(-1, 10**6)]
)
GOOD_PAGE_TOKENS = st.sampled_from(["", _token("order:1"), _token("trade:1"), _token("order:9")])


@dataclass(frozen=True)
class FieldValues:
    """Values of one field: good ones get past its checks to the next ones, bad ones (drawn
    around the catalogue) are hostile or at the edge of what the door takes."""

    good: st.SearchStrategy[Any]
    bad: st.SearchStrategy[Any]
    catalogue: tuple[Any, ...]


_ID_VALUES = FieldValues(
    st.one_of(st.sampled_from(USERS), VISIBLE_IDS), ADVERSARIAL_STRINGS, ADVERSARIAL_TEXT
)
_DECIMAL_VALUES = FieldValues(PLAIN_DECIMALS, ADVERSARIAL_DECIMALS, ADVERSARIAL_DECIMAL_TEXT)
_BY_NAME: Mapping[str, FieldValues] = {
    "user_id": _ID_VALUES,
    "order_id": FieldValues(
        st.one_of(st.sampled_from([*SEED_ORDER_IDS, "nope"]), VISIBLE_IDS),
        ADVERSARIAL_STRINGS,
        ADVERSARIAL_TEXT,
    ),
    "client_order_id": FieldValues(
        st.one_of(st.just(""), VISIBLE_IDS), ADVERSARIAL_STRINGS, ADVERSARIAL_TEXT
    ),
    "instrument": FieldValues(
        st.sampled_from(sorted(INSTRUMENTS)), ADVERSARIAL_STRINGS, ADVERSARIAL_TEXT
    ),
    "price": _DECIMAL_VALUES,
    "quantity": _DECIMAL_VALUES,
    "stop_price": _DECIMAL_VALUES,
    "min_position": FieldValues(
        GOOD_POSITION_TOKENS,
        st.one_of(st.sampled_from(BAD_POSITION_TOKENS), ADVERSARIAL_STRINGS),
        BAD_POSITION_TOKENS,
    ),
    "page_token": FieldValues(
        GOOD_PAGE_TOKENS,
        st.one_of(st.sampled_from(BAD_PAGE_TOKENS), ADVERSARIAL_STRINGS),
        BAD_PAGE_TOKENS,
    ),
    "page_size": FieldValues(st.sampled_from([0, 1, 2, 1000]), INT32, INT32_EDGES),
    "depth": FieldValues(st.sampled_from([0, 1, 5]), UINT32, UINT32_EDGES),
}
_SMALL = st.integers(0, 100)
_BY_TYPE: Mapping[int, FieldValues] = {
    FieldDescriptor.TYPE_BOOL: FieldValues(st.booleans(), st.booleans(), (True,)),
    FieldDescriptor.TYPE_INT32: FieldValues(_SMALL, INT32, INT32_EDGES),
    FieldDescriptor.TYPE_SINT32: FieldValues(_SMALL, INT32, INT32_EDGES),
    FieldDescriptor.TYPE_UINT32: FieldValues(_SMALL, UINT32, UINT32_EDGES),
    FieldDescriptor.TYPE_INT64: FieldValues(_SMALL, INT64, INT64_EDGES),
    FieldDescriptor.TYPE_SINT64: FieldValues(_SMALL, INT64, INT64_EDGES),
    FieldDescriptor.TYPE_UINT64: FieldValues(_SMALL, UINT64, UINT64_EDGES),
    FieldDescriptor.TYPE_STRING: FieldValues(VISIBLE_IDS, ADVERSARIAL_STRINGS, ADVERSARIAL_TEXT),
}


def field_values(field: FieldDescriptor) -> FieldValues:
    """The values of one field: by its name when the name says what it holds, else by type.
    A nested request message (StreamPlaceOrders' order) is swept through its own fields."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return FieldValues(st.sampled_from(GOOD_STAMPS), BAD_STAMPS, ADVERSARIAL_STAMPS)
        nested = request_specs(field.message_type)
        if field.message_type.name == "PlaceOrderRequest":
            # Mostly-valid orders too, so the stream entry's deeper checks are reached.
            return FieldValues(poisoned_place_specs().map(first), nested, ())
        return FieldValues(nested, nested, ())
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return FieldValues(
            st.sampled_from(known), st.sampled_from(UNKNOWN_ENUM_NUMBERS), UNKNOWN_ENUM_NUMBERS
        )
    if field.name in _BY_NAME:
        return _BY_NAME[field.name]
    if field.type not in _BY_TYPE:
        raise NotImplementedError(f"no values for field {field.full_name}")
    return _BY_TYPE[field.type]


# Fields a call cannot do without (an enum's 0 is "not set").
REQUIRED_FIELDS: Mapping[str, frozenset[str]] = {
    # user_id may be empty everywhere (issue 13): the account is the key's.
    "PlaceOrderRequest": frozenset({"instrument", "side", "type", "quantity"}),
    "CancelOrderRequest": frozenset({"order_id"}),
    "AmendOrderRequest": frozenset({"order_id"}),
    "GetOrderRequest": frozenset({"order_id"}),
    "GetOrderBookRequest": frozenset({"instrument"}),
    "ListTradesRequest": frozenset({"instrument"}),
    "StreamTradesRequest": frozenset({"instrument"}),
    "StreamOrderBookRequest": frozenset({"instrument"}),
    # Money (issue 14): a transfer names what, how much and its id; a control, both.
    "DepositRequest": frozenset({"user_id", "asset", "amount", "transfer_id"}),
    "AdminServiceWithdrawRequest": frozenset({"user_id", "asset", "amount", "transfer_id"}),
    "WithdrawRequest": frozenset({"asset", "amount", "transfer_id"}),
    "SetInstrumentStatusRequest": frozenset({"instrument", "status"}),
}


@st.composite
def request_specs(draw: st.DrawFn, message: Descriptor) -> dict[str, Any]:
    """A spec for `message`: usually one field drawn bad (sometimes none, sometimes several),
    the others good, optional ones sometimes left unset (proto3's default), so that most
    requests get past the other fields' checks to the one under attack."""
    names = [field.name for field in message.fields]
    required = REQUIRED_FIELDS.get(message.name, frozenset())
    how_many = draw(st.sampled_from(["one", "one", "one", "none", "several"])) if names else ""
    bad: set[str] = set()
    if how_many == "one":
        bad = {draw(st.sampled_from(names))}
    elif how_many == "several":
        bad = set(draw(st.lists(st.sampled_from(names), unique=True)))
    spec: dict[str, Any] = {}
    for field in message.fields:
        if field.name not in bad | required and draw(st.integers(0, 3)) == 0:
            continue
        values = field_values(field)
        chosen = values.bad if field.name in bad else values.good
        spec[field.name] = draw(st.lists(chosen, max_size=2) if field.is_repeated else chosen)
    return spec


def stream_specs(message: Descriptor) -> st.SearchStrategy[list[dict[str, Any]]]:
    """The requests of a client stream: a few, with request ids that may repeat."""
    return st.lists(request_specs(message), min_size=1, max_size=3)


# -- PlaceOrder: well-formed, then one field spoiled -----------------------------------------

LIMIT, MARKET, STOP_LIMIT, STOP_MARKET = 1, 2, 3, 4
GTC, IOC, FOK, GTD = 1, 2, 3, 4
# Ticks or lots: the least and the most the door takes, and the ordinary in between.
STEPS = st.one_of(st.sampled_from([1, MAX_STEPS]), st.integers(1, 10**6))


@st.composite
def clean_place_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A PlaceOrderRequest spec the door must accept: each field as the order type asks."""
    instrument = draw(st.sampled_from(sorted(INSTRUMENTS)))
    tick, lot = INSTRUMENTS[instrument]
    order_type = draw(st.sampled_from([LIMIT, MARKET, STOP_LIMIT, STOP_MARKET]))
    priced = order_type in (LIMIT, STOP_LIMIT)
    spec: dict[str, Any] = {
        "user_id": draw(st.one_of(st.sampled_from(USERS), VISIBLE_IDS)),
        "instrument": instrument,
        "side": draw(st.sampled_from([1, 2])),
        "type": order_type,
        "quantity": str(draw(STEPS) * lot),
        "stp": draw(st.sampled_from([0, 1, 2, 3, 4])),
    }
    if priced:
        spec["price"] = str(draw(STEPS) * tick)
        spec["time_in_force"] = draw(st.sampled_from([0, GTC, IOC, FOK, GTD]))
        if spec["time_in_force"] == GTD:
            spec["expire_time"] = draw(st.sampled_from(GOOD_STAMPS))
        if order_type == LIMIT:
            spec["post_only"] = draw(st.booleans())
    else:
        spec["time_in_force"] = draw(st.sampled_from([0, IOC, FOK]))
        spec["max_slippage_bps"] = draw(st.sampled_from([0, 1, 50, 10_000, 2**32 - 1]))
    if order_type in (STOP_LIMIT, STOP_MARKET):
        spec["stop_price"] = str(draw(STEPS) * tick)
    if draw(st.booleans()):
        spec["client_order_id"] = draw(VISIBLE_IDS)
    return spec


PLACE_POISONS: Mapping[str, st.SearchStrategy[Any]] = {
    "user_id": ADVERSARIAL_STRINGS,
    "client_order_id": ADVERSARIAL_STRINGS,
    "instrument": ADVERSARIAL_STRINGS,
    "side": st.sampled_from([0, *UNKNOWN_ENUM_NUMBERS]),
    "type": st.sampled_from([0, *UNKNOWN_ENUM_NUMBERS]),
    "time_in_force": st.sampled_from(UNKNOWN_ENUM_NUMBERS),
    "stp": st.sampled_from(UNKNOWN_ENUM_NUMBERS),
    "price": ADVERSARIAL_DECIMALS,
    "quantity": ADVERSARIAL_DECIMALS,
    "stop_price": ADVERSARIAL_DECIMALS,
    "expire_time": BAD_STAMPS,
}


def shaped_for(spec: dict[str, Any], field: str) -> dict[str, Any]:
    """`spec` reshaped so that `field` is one its order type takes: a GTD limit for
    expire_time, a stop limit for stop_price, a market order for max_slippage_bps."""
    tick, _ = INSTRUMENTS[spec.get("instrument", "BTC-USD")]
    for unused in ("expire_time", "stop_price", "max_slippage_bps", "post_only"):
        spec.pop(unused, None)
    if field == "expire_time":
        spec.update(type=LIMIT, time_in_force=GTD, price=str(tick * 100))
    elif field == "stop_price":
        spec.update(type=STOP_LIMIT, time_in_force=GTC, price=str(tick * 100))
    elif field == "max_slippage_bps":
        spec.update(type=MARKET, time_in_force=IOC)
        spec.pop("price", None)
    return spec


@st.composite
def poisoned_place_specs(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    """(spec, the spoiled field or None): a clean request, then at most one field spoiled."""
    spec = draw(clean_place_specs())
    field = draw(st.one_of(st.none(), st.sampled_from(sorted(PLACE_POISONS))))
    if field is None:
        return spec, None
    if field == "expire_time":
        spec = shaped_for(spec, field)
    spec[field] = draw(PLACE_POISONS[field])
    return spec, field


def first(pair: tuple[dict[str, Any], str | None]) -> dict[str, Any]:
    return pair[0]


# -- the oracle ----------------------------------------------------------------------------


def valid_id(value: str) -> bool:
    return _IDENTIFIER.fullmatch(value) is not None


def plain_decimal(text: str) -> bool:
    return len(text) <= MAX_DECIMAL_CHARS and _DECIMAL.fullmatch(text) is not None


def on_grid(text: str, step: Decimal) -> bool:
    """A plain, positive decimal on `step`'s grid within the 64-bit bound."""
    if not plain_decimal(text):
        return False
    with localcontext() as exact:
        exact.prec = 2 * MAX_DECIMAL_CHARS  # no rounding of a 40-character decimal
        value = Decimal(text)
        return value > 0 and value % step == 0 and value / step <= MAX_STEPS


def stamp_in_range(stamp: Stamp, now: datetime) -> bool:
    """Inside what every reader of the log holds, and later than now (GTD expiry)."""
    if not 0 <= stamp.nanos < 10**9:
        return False
    total_ns = stamp.seconds * 10**9 + stamp.nanos
    now_ns = int(now.timestamp() * 10**6) * 1000
    return now_ns < total_ns < LATEST_NS


def valid_page_token(kind: str, token: str) -> bool:
    """A token this kind of list could have made: base64url of "<kind>:<ASCII digits>"
    within PostgreSQL's bigint."""
    try:
        text = base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()).decode()
    except ValueError:
        return False
    prefix, _, key = text.partition(":")
    return (
        _token(text) == token
        and prefix == kind
        and re.fullmatch(r"[0-9]{1,19}", key) is not None
        and int(key) < 2**63
    )


PAGE_TOKEN_KINDS = {
    "ListOrdersRequest": "order",
    "ListTradesRequest": "trade",
    "ListLedgerEntriesRequest": "ledger",
}


def poisoned_fields(message: Descriptor, spec: Mapping[str, Any], now: datetime) -> list[str]:
    """The fields of a request (not of a nested one) that the door must refuse."""
    poisoned = [
        name for name in sorted(REQUIRED_FIELDS.get(message.name, ())) if not spec.get(name)
    ]
    for field in message.fields:
        name = field.name
        if name in spec and name not in poisoned and _refused(message, field, spec[name], now):
            poisoned.append(name)
    return poisoned


def _refused(message: Descriptor, field: FieldDescriptor, value: Any, now: datetime) -> bool:
    name = field.name
    if isinstance(value, list):  # a repeated field (AdminService's scopes): any bad item
        return any(_refused(message, field, item, now) for item in value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return value not in {known.number for known in field.enum_type.values}
    if isinstance(value, Stamp):
        return not stamp_in_range(value, now)
    if isinstance(value, HeadToken):
        return value.beyond
    if not isinstance(value, str) or not value:
        return False
    if name in ID_FIELDS:
        return not valid_id(value)
    if name == "instrument":
        return value not in INSTRUMENTS
    if name in DECIMAL_FIELDS:
        return not plain_decimal(value)
    if name == "min_position":
        return _POSITION.fullmatch(value) is None
    if name == "page_token":
        return not valid_page_token(PAGE_TOKEN_KINDS[message.name], value)
    return False


Expectation = Literal["refused", "accepted", "either"]


def place_expectation(spec: Mapping[str, Any], field: str | None) -> Expectation:
    """What the door must answer to a clean PlaceOrder with `field` spoiled: "refused"
    (naming `field`), "accepted", or "either" (a valid value that changes which other
    fields fit, or a field the oracle has no rule for)."""
    if field is None:
        return "accepted"
    value = spec[field]
    if field == "instrument":
        return "refused" if value not in INSTRUMENTS else "either"
    refused = _place_value_refused(spec, field, value)
    if refused is None:
        return "either"
    return "refused" if refused else "accepted"


def _place_value_refused(spec: Mapping[str, Any], field: str, value: Any) -> bool | None:
    if field == "side":
        return value not in (1, 2)
    if field == "type":
        return value not in (LIMIT, MARKET, STOP_LIMIT, STOP_MARKET)
    if field in ("time_in_force", "stp"):
        return value not in (0, 1, 2, 3, 4)
    if field == "expire_time":
        return not stamp_in_range(value, datetime.now(UTC))
    if field == "client_order_id":
        return bool(value) and not valid_id(value)
    if field == "user_id":  # empty: the key's account
        return bool(value) and not valid_id(value)
    if field not in DECIMAL_FIELDS:
        return None
    tick, lot = INSTRUMENTS[spec["instrument"]]
    if field == "quantity":
        return not on_grid(value, lot)
    uses = {"price": (LIMIT, STOP_LIMIT), "stop_price": (STOP_LIMIT, STOP_MARKET)}[field]
    if spec["type"] not in uses:
        return bool(value)  # NOT_ALLOWED
    return not on_grid(value, tick)
