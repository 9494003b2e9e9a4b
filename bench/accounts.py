"""Balances' cost: the engine benchmark's workload with balances off, then on, in one run.

The same seeded stream as `bench.engine` (70% limit, 10% market, 20% cancel; book deltas on
as in the service), replayed into a fresh engine without accounts and into one with
accounts on where every user was funded far beyond its orders (so both trade exactly
alike; the second also holds, releases and settles with maker/taker fees). Each is timed
best of `--repeat` in CPU seconds; the ratio is the cost of balances per operation.
Target: at most 1.25x.

    python -m bench accounts            # or: python -m bench.accounts --ops 100000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from bench.engine import INSTRUMENT, _settle_garbage_collector, build_workload
from domain.commands import AddAsset, AddInstrument, Command, Deposit, EnableAccounts
from domain.engine import MatchingEngine
from domain.events import TradeExecuted

TARGET_RATIO = 1.25
FUNDED_INSTRUMENT = replace(INSTRUMENT, base="BENCH", quote="USD", maker_fee_bps=2, taker_fee_bps=5)
USERS = [f"u{number}" for number in range(100)]


def engine_for(accounts: bool) -> MatchingEngine:
    if not accounts:
        return MatchingEngine([FUNDED_INSTRUMENT], book_deltas=True)
    engine = MatchingEngine(book_deltas=True)
    setup: list[Command] = [AddAsset("BENCH", 8), AddAsset("USD", 8), EnableAccounts()]
    setup.append(AddInstrument(FUNDED_INSTRUMENT))
    for user in USERS:
        for asset in ("BENCH", "USD"):
            # Far beyond its orders, and within a machine word like real balances.
            setup.append(Deposit(f"fund-{user}-{asset}", user, asset, 10**17))
    for command in setup:
        engine.handle(command)
    return engine


def run(commands: list[Command], accounts: bool) -> tuple[float, int]:
    engine = engine_for(accounts)
    handle = engine.handle
    events = 0
    _settle_garbage_collector()
    started = time.process_time()
    for command in commands:
        events += len(handle(command))
    return time.process_time() - started, events


def _trades(commands: list[Command], accounts: bool) -> list[TradeExecuted]:
    engine = engine_for(accounts)
    return [e for c in commands for e in engine.handle(c) if isinstance(e, TradeExecuted)]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.accounts", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    commands = build_workload(args.ops, args.seed)
    off: list[tuple[float, int]] = []
    on: list[tuple[float, int]] = []
    for _ in range(max(1, args.repeat)):  # interleaved, so a noisy moment hits both
        off.append(run(commands, accounts=False))
        on.append(run(commands, accounts=True))
    (off_cpu, off_events), (on_cpu, on_events) = min(off), min(on)
    trades = [_trades(commands, accounts) for accounts in (False, True)]
    if trades[0] != trades[1]:
        raise SystemExit("accounts: the funded engine traded differently from the unfunded one")
    ratio = on_cpu / off_cpu
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    print(
        f"accounts: balances off {len(commands) / off_cpu:,.0f} ops per CPU-second "
        f"({off_events:,} events)\n"
        f"accounts: balances on  {len(commands) / on_cpu:,.0f} ops per CPU-second "
        f"({on_events:,} events)\n"
        f"accounts: CPU per op on/off {ratio:.2f}x (target <= {TARGET_RATIO:.2f}x: {verdict}); "
        f"both made the same {len(trades[0]):,} trades"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
