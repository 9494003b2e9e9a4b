"""Identities: API keys (their text and hash), the key ring folded from the log, the scope
each RPC needs, and the principal of the call being served."""
