"""The exchange's domain: a pure, deterministic order matching engine.

`domain.engine.MatchingEngine` takes commands (`domain.commands`) and returns events
(`domain.events`); `domain.instruments` converts decimals to integer ticks and lots;
`domain.codec` gives their JSON shapes; `python -m domain.replay` runs JSON lines through it.
No I/O, no clock, no logging: see docs/engine.md. (The one exception is at import:
`domain.compiled` reads the compiled build's manifest and hashes the sources it lists to
choose between the mypyc-compiled modules and this source; see docs/performance.md.)
"""

from domain.compiled import select_build

# The compiled engine (`make compile`) when it is built and current, else this source.
select_build(__path__)
