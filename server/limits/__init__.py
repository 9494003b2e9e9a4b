"""Abuse control: what one client (one key) may take from the service.

- ``keying``: whose budget a call spends (the peer's address today; the API key's id once
  identities exist), in one place.
- ``token_bucket``: commands per second per key (``RATE_LIMIT_PER_S``, ``RATE_LIMIT_BURST``).
- ``stream_slots``: open streaming calls per key (``MAX_STREAMS_PER_KEY``).
- ``answers``: the RESOURCE_EXHAUSTED statuses (with ``google.rpc.RetryInfo``) and the
  in-stream answer of StreamPlaceOrders.
- ``interceptor``: applies both to every call, before the handlers run.

Message size is capped by gRPC itself (``grpc.max_receive_message_length``, set in
``server.app``).
"""
