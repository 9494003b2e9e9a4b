"""Properties of balances on random streams (hypothesis): deposits, withdrawals and every
order type (limit, market, FOK/IOC, stops, GTD, amends, cancels, cancel-all, time).

After every command:
- per asset, the sum of available + held over every account (the fee account included)
  equals deposits - withdrawals;
- per account and asset, held equals exactly what its open orders hold, and no balance is
  negative;
- folding the emitted events, as the replayer writes them (JSON, decimal amounts), gives
  the engine's balances.
And:
- with every account funded far beyond its orders, the stream trades exactly as it does
  with balances off;
- a restored snapshot gives the same balances and the same future events.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from test_engine_properties import FULL_OPS, PROPERTY_SETTINGS, to_commands

from domain.assets import FEE_ACCOUNT
from domain.codec import event_from_dict, event_to_dict
from domain.commands import (
    AddAsset,
    AddInstrument,
    Command,
    Deposit,
    EnableAccounts,
    Withdraw,
)
from domain.engine import MatchingEngine
from domain.events import (
    Event,
    FundsDeposited,
    FundsHeld,
    FundsReleased,
    FundsWithdrawn,
    TradeSettled,
)
from domain.instruments import Instrument

# The engine scenarios' instrument "T" (tick 1, lot 1), trading B for Q, with fees that
# round (13 bps of a notional near 1,000 units) and assets of precision 0, so a unit is a
# tick x lot: every rounding shows.
FUNDED_T = Instrument("T", Decimal(1), Decimal(1), None, "B", "Q", 7, 13)
USERS = ("u0", "u1", "u2")
MONEY_EVENTS = (FundsHeld, FundsReleased, TradeSettled, FundsDeposited, FundsWithdrawn)

TRANSFER = st.tuples(
    st.integers(0, 10_000),  # where in the stream (modulo its length)
    st.sampled_from(["deposit", "deposit", "withdraw"]),
    st.sampled_from(USERS),
    st.sampled_from(["B", "Q"]),
    st.integers(1, 3_000),
)
TRANSFERS = st.lists(TRANSFER, max_size=25)


def accounts_engine() -> MatchingEngine:
    engine = MatchingEngine(book_deltas=True)
    for command in (AddAsset("B", 0), AddAsset("Q", 0), EnableAccounts(), AddInstrument(FUNDED_T)):
        engine.handle(command)
    return engine


def with_transfers(
    commands: list[Command], transfers: list[tuple[Any, ...]], funding: int = 0
) -> list[Command]:
    """The order commands with the drawn transfers spliced in; `funding` first deposits
    that much of each asset to every account."""
    stream: list[Command] = [
        Deposit(f"f-{user}-{asset}", user, asset, funding)
        for user in USERS
        for asset in ("B", "Q")
        if funding
    ]
    stream += commands
    for number, (at, kind, user, asset, amount) in enumerate(transfers):
        transfer = (Deposit if kind == "deposit" else Withdraw)(f"x{number}", user, asset, amount)
        stream.insert(at % (len(stream) + 1), transfer)
    return stream


class LedgerFold:
    """Balances rebuilt from the events alone, as any reader of the log would."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.net_deposits: dict[str, int] = defaultdict(int)

    def apply(self, event: Event) -> None:
        balances = self.balances
        if isinstance(event, FundsDeposited):
            balances[(event.user_id, event.asset)][0] += event.amount
            self.net_deposits[event.asset] += event.amount
        elif isinstance(event, FundsWithdrawn):
            balances[(event.user_id, event.asset)][0] -= event.amount
            self.net_deposits[event.asset] -= event.amount
        elif isinstance(event, FundsHeld | FundsReleased):
            sign = 1 if isinstance(event, FundsHeld) else -1
            balance = balances[(event.user_id, event.asset)]
            balance[0] -= sign * event.amount
            balance[1] += sign * event.amount
        elif isinstance(event, TradeSettled):
            base, quote = event.base_asset, event.quote_asset
            buyer_quote = balances[(event.buyer_user_id, quote)]
            buyer_quote[1] -= event.buyer_held_used
            buyer_quote[0] += event.buyer_held_used - event.quote_amount - event.buyer_fee
            balances[(event.buyer_user_id, base)][0] += event.base_amount
            seller_base = balances[(event.seller_user_id, base)]
            seller_base[1] -= event.seller_held_used
            seller_base[0] += event.seller_held_used - event.base_amount
            balances[(event.seller_user_id, quote)][0] += event.quote_amount - event.seller_fee
            balances[(FEE_ACCOUNT, quote)][0] += event.buyer_fee + event.seller_fee

    def as_engine_reports(self) -> dict[tuple[str, str], tuple[int, int]]:
        return {key: (a, h) for key, (a, h) in self.balances.items() if (a, h) != (0, 0)}


def what_open_orders_hold(engine: MatchingEngine) -> dict[tuple[str, str], int]:
    state = engine._state
    assert state.accounts is not None
    held: dict[tuple[str, str], int] = defaultdict(int)
    for order in state.open_orders_by_id.values():
        money = state.accounts.money_by_symbol[order.instrument]
        amount = money.hold_of(order)
        if amount:
            held[(order.user_id, money.hold_asset(order.is_buy))] += amount
    return held


def check_balances(engine: MatchingEngine, fold: LedgerFold) -> None:
    balances = engine.balances()
    assert all(available >= 0 and held >= 0 for available, held in balances.values())
    totals: dict[str, int] = defaultdict(int)
    for (_, asset), (available, held) in balances.items():
        totals[asset] += available + held
    assert {a: t for a, t in totals.items() if t} == {
        a: t for a, t in fold.net_deposits.items() if t
    }
    needed = what_open_orders_hold(engine)
    assert {key: held for key, (_, held) in balances.items() if held} == dict(needed)
    assert {k: v for k, v in balances.items() if v != (0, 0)} == fold.as_engine_reports()


@PROPERTY_SETTINGS
@given(FULL_OPS, TRANSFERS, st.sampled_from([0, 400, 5_000]))
def test_money_adds_up_after_every_command(
    ops: list[tuple[Any, ...]], transfers: list[tuple[Any, ...]], funding: int
) -> None:
    engine = accounts_engine()
    fold = LedgerFold()
    for command in with_transfers(to_commands(ops), transfers, funding):
        for event in engine.handle(command):
            # Through the replayer's JSON and back: its output alone rebuilds balances.
            data = orjson.loads(
                orjson.dumps(event_to_dict(event, engine.instruments, engine.assets))
            )
            fold.apply(event_from_dict(data, engine.instruments, engine.assets))
        check_balances(engine, fold)


@PROPERTY_SETTINGS
@given(FULL_OPS)
def test_accounts_funded_far_beyond_their_orders_trade_exactly_as_without_balances(
    ops: list[tuple[Any, ...]],
) -> None:
    commands = to_commands(ops)
    without = MatchingEngine([FUNDED_T], book_deltas=True)
    funded = accounts_engine()
    for command in with_transfers([], [], funding=10**9):
        funded.handle(command)
    for command in commands:
        expected = without.handle(command)
        got = [event for event in funded.handle(command) if not isinstance(event, MONEY_EVENTS)]
        assert got == expected


@PROPERTY_SETTINGS
@given(FULL_OPS, TRANSFERS, FULL_OPS, TRANSFERS)
def test_a_restored_snapshot_has_the_same_balances_and_future(
    before: list[tuple[Any, ...]],
    before_transfers: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
    after_transfers: list[tuple[Any, ...]],
) -> None:
    original = accounts_engine()
    for command in with_transfers(to_commands(before), before_transfers, funding=2_000):
        original.handle(command)
    restored = MatchingEngine.restore(original.snapshot(), book_deltas=True)
    assert restored.balances() == original.balances()
    assert restored.snapshot() == original.snapshot()
    # Later ids must not collide with the first part's: prefix them.
    later = [
        _renamed(command)
        for command in with_transfers(to_commands(after), after_transfers, funding=0)
    ]
    for command in later:
        assert restored.handle(command) == original.handle(command)
    assert restored.balances() == original.balances()


def _renamed(command: Command) -> Command:
    if isinstance(command, Deposit | Withdraw):
        return type(command)("later-" + command.transfer_id, *_transfer_fields(command))
    return command


def _transfer_fields(command: Deposit | Withdraw) -> tuple[str, str, int]:
    return command.user_id, command.asset, command.amount
