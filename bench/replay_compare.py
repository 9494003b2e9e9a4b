"""The replayer against the reference book behind the same JSON lines (issue #16).

`python -m domain.replay` and `python -m bench.reference_replay` read the side-by-side
stream as the replayer's JSON command lines; each is a fresh process, timed by its CPU
(user + system, start-up included, from `getrusage`), best of `repeat`. Both must write the
same number of trades.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from typing import Any

import orjson

from bench.workload import CANCEL, LIMIT, SYMBOL, Operation

REPLAY_TARGET = 1.3


def _decimal_text(steps: int, places: int) -> str:
    whole, fraction = divmod(steps, 10**places)
    return f"{whole}.{fraction:0{places}d}"


def command_lines(operations: list[Operation]) -> bytes:
    """The stream as the replayer's JSON command lines (tick 0.01, lot 0.0001)."""
    lines = [
        orjson.dumps(
            {"op": "instrument", "symbol": SYMBOL, "tick_size": "0.01", "lot_size": "0.0001"}
        )
    ]
    for operation in operations:
        if operation[0] == CANCEL:
            lines.append(orjson.dumps({"op": "cancel", "order_id": operation[1]}))
            continue
        command: dict[str, Any] = {
            "op": "place",
            "order_id": operation[1],
            "user_id": operation[2],
            "instrument": SYMBOL,
            "side": "BUY" if operation[3] else "SELL",
        }
        if operation[0] == LIMIT:
            command["type"] = "LIMIT"
            command["price"] = _decimal_text(operation[4], 2)
            command["quantity"] = _decimal_text(operation[5], 4)
        else:
            command["type"] = "MARKET"
            command["quantity"] = _decimal_text(operation[4], 4)
            command["max_slippage_bps"] = operation[5]
        lines.append(orjson.dumps(command))
    return b"\n".join(lines) + b"\n"


def _replay_cpu(module: str, commands: str, output: str | None, pure: bool) -> float:
    """CPU seconds (user + system) of `python -m module < commands > output`."""
    env = dict(os.environ)
    if pure:
        env["EXCHANGE_PURE_PYTHON"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(commands, "rb") as stdin, open(output or os.devnull, "wb") as stdout:
        subprocess.run(
            [sys.executable, "-m", module], stdin=stdin, stdout=stdout, env=env, check=True
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare_replayers(operations: list[Operation], repeat: int, builds: list[bool]) -> None:
    """`python -m domain.replay` against `python -m bench.reference_replay` on the same
    command lines, each a fresh process (startup included), best of `repeat`."""
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as scratch:
        commands = os.path.join(scratch, "commands.jsonl")
        with open(commands, "wb") as file:
            file.write(command_lines(operations))
        contenders = [("bench.reference_replay", False)] + [("domain.replay", p) for p in builds]
        best: dict[tuple[str, bool], float] = {}
        trades: dict[tuple[str, bool], int] = {}
        for round_number in range(max(1, repeat)):
            for contender in contenders:
                output = os.path.join(scratch, "out.jsonl") if round_number == 0 else None
                cpu = _replay_cpu(contender[0], commands, output, contender[1])
                best[contender] = min(best.get(contender, float("inf")), cpu)
                if output is not None:
                    with open(output, "rb") as file:
                        written = file.read()
                    is_reference = contender[0] == "bench.reference_replay"
                    marker = b'"trade"' if is_reference else b'"TradeExecuted"'
                    trades[contender] = written.count(marker)
    reference = best[contenders[0]]
    print(
        f"replay: reference book behind JSON lines: {reference:.2f} s CPU "
        "(whole process, startup included)"
    )
    for contender in contenders[1:]:
        ratio = best[contender] / reference
        build = "pure, forced" if contender[1] else "as built"
        verdict = "MET" if ratio <= REPLAY_TARGET else "NOT MET"
        print(
            f"replay: python -m domain.replay ({build}): {best[contender]:.2f} s CPU, "
            f"{ratio:.2f}x the reference's CPU (target <= {REPLAY_TARGET}x: {verdict})"
        )
    if len(set(trades.values())) != 1:
        raise SystemExit(f"replay check FAILED: trades written differ: {trades}")
    print(f"replay check: {trades[contenders[0]]:,} trades written by each")
