"""What people outside the service use: the generated stubs, a typed client and the CLI.

- `clients.generated.exchange.v1`: protobuf/gRPC stubs (`python -m clients.generate`).
- `clients.client.ExchangeClient`: typed asyncio client of every exchange.v1 RPC, with
  `clients.models` (values), `clients.enums`, `clients.errors` (typed exceptions with the
  rich status details) and `clients.conversions` (exact wire conversions).
- `clients.book_mirror.OrderBookMirror`: a local book from the StreamOrderBook feed.
- `clients.cli` (`exchange`), `clients.cli_keys` (`exchange keys ...`) and
  `clients.loadgen` (`exchange load`).
- `clients.account_keys`: per-account keys attached by channel interceptors, for tools
  that act for many accounts (bench/, the tests' harness).
"""
