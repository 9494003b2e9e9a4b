"""Issue #16's side-by-side: our engine against a plain-Python reference book, same stream.

The stream is `bench.workload` (default 200,000 operations, seed 7). Each contender runs
in a fresh process (`python -m bench.side_by_side --child NAME`), builds its command for
every operation inside the timed loop, and reports its CPU seconds (`time.process_time`);
the best of `--repeat` processes counts. Contenders: the reference book
(`bench.reference_book`: no events, no features) and our engine with every feature on
(book deltas on, every event built), as built (compiled when `make` compiled it) and,
when that is the compiled build, once more with the pure-Python build forced
(EXCHANGE_PURE_PYTHON=1). An untimed pass of each checks that fills (maker, taker,
price, quantity, in order), volume and the final book agree.

    python -m bench side_by_side      # or: python -m bench.side_by_side --ops 50000
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import orjson

from bench.instructions import compare_instructions
from bench.reference_book import Fill, ReferenceBook
from bench.replay_compare import compare_replayers
from bench.workload import CANCEL, LIMIT, MARKET, SYMBOL, Operation, build_operations

TARGET_RATIO = 1.0
BookLevels = tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]


def _settle_garbage_collector() -> None:
    # The operation list is input, not state of the book under test.
    gc.collect()
    gc.freeze()


def time_reference(
    operations: list[Operation], collect: bool = False
) -> tuple[float, ReferenceBook, list[Fill]]:
    """CPU seconds of the stream through a fresh reference book; with `collect`, every
    fill too (then the time is not the figure: that pass is the check's)."""
    book = ReferenceBook()
    limit, market, cancel = book.limit, book.market, book.cancel
    fills: list[Fill] = []
    keep = fills.extend if collect else len
    _settle_garbage_collector()
    started = time.process_time()
    for operation in operations:
        kind = operation[0]
        if kind == LIMIT:
            keep(limit(operation[1], operation[3], operation[4], operation[5]))
        elif kind == MARKET:
            keep(market(operation[1], operation[3], operation[4], operation[5]))
        else:
            cancel(operation[1])
    return time.process_time() - started, book, fills


def _engine() -> Any:
    from domain.engine import MatchingEngine
    from domain.instruments import Instrument

    return MatchingEngine(
        [Instrument(SYMBOL, Decimal("0.01"), Decimal("0.0001"))], book_deltas=True
    )


def time_engine(operations: list[Operation], collect: bool = False) -> tuple[float, Any, list[Any]]:
    """CPU seconds of the stream through a fresh engine; with `collect`, every event too
    (then the time is not the figure: that pass is the check's)."""
    from domain.commands import CancelOrder, PlaceOrder
    from domain.orders import OrderType, Side

    engine = _engine()
    handle = engine.handle
    buy, sell = Side.BUY, Side.SELL
    limit_type, market_type = OrderType.LIMIT, OrderType.MARKET
    symbol = SYMBOL
    events: list[Any] = []
    keep = events.extend if collect else len
    _settle_garbage_collector()
    started = time.process_time()
    for operation in operations:
        kind = operation[0]
        if kind == LIMIT:
            keep(
                handle(
                    PlaceOrder(
                        operation[1],
                        operation[2],
                        symbol,
                        buy if operation[3] else sell,
                        limit_type,
                        operation[5],
                        operation[4],
                    )
                )
            )
        elif kind == MARKET:
            keep(
                handle(
                    PlaceOrder(
                        operation[1],
                        operation[2],
                        symbol,
                        buy if operation[3] else sell,
                        market_type,
                        operation[4],
                        max_slippage_bps=operation[5],
                    )
                )
            )
        else:
            keep(handle(CancelOrder(operation[1])))
    return time.process_time() - started, engine, events


def _outcome(fills: list[tuple[str, str, int, int]], levels: BookLevels) -> dict[str, Any]:
    digest = hashlib.sha256(orjson.dumps([fills, levels])).hexdigest()[:16]
    return {
        "fills": len(fills),
        "volume": sum(fill[3] for fill in fills),
        "levels": len(levels[0]) + len(levels[1]),
        "digest": digest,
    }


def outcome_of(name: str, operations: list[Operation]) -> dict[str, Any]:
    """Fills, volume and final book of one contender, for the agreement check."""
    if name == "reference":
        _, book, fills = time_reference(operations, collect=True)
        return _outcome(fills, book.levels())
    from domain.events import TradeExecuted

    _, engine, events = time_engine(operations, collect=True)
    fills = [
        (e.maker_order_id, e.taker_order_id, e.price, e.quantity)
        for e in events
        if type(e) is TradeExecuted
    ]
    return _outcome(fills, engine.book_levels(SYMBOL, depth=1 << 30))


def engine_build() -> str:
    from domain.compiled import active_build

    return active_build()


def child(name: str, count: int, seed: int, check: bool, timed: int | None = None) -> None:
    """Time one contender on the stream (`timed`: only its first so many operations)."""
    operations = build_operations(count, seed)
    stream = operations if timed is None else operations[:timed]
    if name == "reference":
        elapsed = time_reference(stream)[0]
        build = "pure"
    else:
        elapsed = time_engine(stream)[0]
        build = engine_build()
    report: dict[str, Any] = {"cpu": elapsed, "build": build}
    if check:
        report["outcome"] = outcome_of(name, operations)
    print(orjson.dumps(report).decode())


def _run_child(name: str, count: int, seed: int, check: bool, pure: bool) -> dict[str, Any]:
    env = dict(os.environ)
    if pure:
        env["EXCHANGE_PURE_PYTHON"] = "1"
    argv = [sys.executable, "-m", "bench.side_by_side", "--child", name]
    argv += ["--ops", str(count), "--seed", str(seed)] + (["--check"] if check else [])
    completed = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"side_by_side child {name} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = orjson.loads(completed.stdout.splitlines()[-1])
    return result


def _verdict(ratio: float, target: float) -> str:
    return "MET" if ratio >= target else "NOT MET"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.side_by_side", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per contender")
    parser.add_argument(
        "--no-replay", dest="replay", action="store_false", help="skip the replayer's comparison"
    )
    parser.add_argument("--child", choices=["reference", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timed", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="OPS",
        help="also count instructions per operation under callgrind on OPS operations "
        "(repeatable where CPU time on a shared host is not; slow: try 20000)",
    )
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.ops, args.seed, args.check, args.timed)
        return
    operations = build_operations(args.ops, args.seed)
    kinds = [sum(1 for op in operations if op[0] == kind) for kind in (LIMIT, MARKET, CANCEL)]
    print(
        f"side by side: {len(operations):,} ops ({kinds[0]:,} limit, {kinds[1]:,} market, "
        f"{kinds[2]:,} cancel), seed {args.seed}, best of {args.repeat} fresh processes, "
        f"commands built in the timed loop"
    )
    contenders = [("reference", False), ("engine", False)]
    best: dict[tuple[str, bool], float] = {}
    outcomes: dict[tuple[str, bool], dict[str, Any]] = {}
    builds: dict[tuple[str, bool], str] = {}
    for round_number in range(max(1, args.repeat)):
        for contender in contenders:
            report = _run_child(
                *contender[:1], args.ops, args.seed, round_number == 0, contender[1]
            )
            builds[contender] = report["build"]
            if "outcome" in report:
                outcomes[contender] = report["outcome"]
            best[contender] = min(best.get(contender, float("inf")), report["cpu"])
        if round_number == 0 and builds[("engine", False)] == "compiled":
            contenders.append(("engine", True))
            report = _run_child("engine", args.ops, args.seed, True, True)
            builds[("engine", True)] = report["build"]
            outcomes[("engine", True)] = report["outcome"]
            best[("engine", True)] = report["cpu"]
    reference_rate = len(operations) / best[("reference", False)]
    print(f"reference book (no events, no features): {reference_rate:,.0f} ops per CPU-second")
    for contender in contenders[1:]:
        rate = len(operations) / best[contender]
        ratio = rate / reference_rate
        print(
            f"engine ({builds[contender]}, book deltas on, every event built): {rate:,.0f} ops "
            f"per CPU-second, {ratio:.2f}x the reference (target >= {TARGET_RATIO:.1f}x: "
            f"{_verdict(ratio, TARGET_RATIO)})"
        )
    expected = outcomes[("reference", False)]
    for contender, outcome in outcomes.items():
        if outcome != expected:
            raise SystemExit(
                f"check FAILED: {contender[0]} ({builds[contender]}) {outcome} != "
                f"reference {expected}"
            )
    print(
        f"check: fills {expected['fills']:,}, volume {expected['volume']:,} lots, final book "
        f"{expected['levels']:,} levels (digest {expected['digest']}): every contender agrees"
    )
    if args.instructions:
        compare_instructions(args.instructions, args.seed, len(contenders) > 2, engine_build())
    if args.replay:
        compare_replayers(
            operations, args.repeat, [False] + ([True] if len(contenders) > 2 else [])
        )


if __name__ == "__main__":
    main(sys.argv[1:])
