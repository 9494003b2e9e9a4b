"""Generated stubs of proto package `exchange.v1`."""
