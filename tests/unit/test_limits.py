"""The limits' parts on their own: token bucket, stream slots, the limits key, settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.limits.keying import peer_host
from server.limits.stream_slots import StreamSlots
from server.limits.token_bucket import PRUNE_ABOVE, RateLimiter
from server.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_then_says_when_the_next_token_comes() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=10, burst=3, clock=clock)
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(0.1)
    clock.now = 0.05
    assert limiter.take("k") == pytest.approx(0.05)  # half a token there
    clock.now = 0.1
    assert limiter.take("k") == 0.0
    assert limiter.take("other") == 0.0  # one bucket per key


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=100, burst=2, clock=clock)
    clock.now = 3600.0
    assert [limiter.take("k") > 0 for _ in range(3)] == [False, False, True]


@given(st.lists(st.floats(min_value=0, max_value=1.0), max_size=200))
def test_no_more_commands_pass_than_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=5, burst=4, clock=clock)
    passed = 0
    for gap in gaps:
        clock.now += gap
        passed += limiter.take("k") == 0.0
    assert passed <= 4 + 5 * clock.now + 1e-9


def test_full_buckets_are_forgotten_when_many_keys_were_seen() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=clock)
    for key in range(PRUNE_ABOVE):
        limiter.take(str(key))
    clock.now = 2.0  # every bucket is full again
    limiter.take("new")
    assert len(limiter) == 1


def test_stream_slots_cap_each_key_and_give_slots_back() -> None:
    slots = StreamSlots(cap=2)
    assert [slots.open("a"), slots.open("a"), slots.open("a")] == [True, True, False]
    assert slots.open("b")
    slots.close("a")
    assert slots.held("a") == 1
    assert slots.open("a")
    slots.close("b")
    assert slots.held("b") == 0


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.1.2.3:5312", "ipv4:10.1.2.3"),
        ("ipv6:[::1]:40000", "ipv6:[::1]"),
        ("unix:/tmp/exchange.sock", "unix:/tmp/exchange.sock"),
        ("", "unknown"),
    ],
)
def test_the_limits_key_of_a_peer_is_its_host_without_the_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host


def test_listeners_bind_loopback_unless_opened() -> None:
    defaults = Settings.from_env({})
    assert (defaults.grpc_host, defaults.metrics_host) == ("127.0.0.1", "127.0.0.1")
    wide = Settings.from_env({"LISTEN_HOST": "0.0.0.0"})
    assert (wide.grpc_host, wide.metrics_host) == ("0.0.0.0", "0.0.0.0")
    mixed = Settings.from_env({"LISTEN_HOST": "0.0.0.0", "METRICS_HOST": "127.0.0.1"})
    assert (mixed.grpc_host, mixed.metrics_host) == ("0.0.0.0", "127.0.0.1")


def test_the_http_listener_follows_listen_host_and_has_its_own_port() -> None:
    defaults = Settings.from_env({})
    assert (defaults.http_host, defaults.http_port) == ("127.0.0.1", 8080)
    wide = Settings.from_env({"LISTEN_HOST": "0.0.0.0", "HTTP_PORT": "0"})
    assert (wide.http_host, wide.http_port) == ("0.0.0.0", 0)
    own = Settings.from_env({"LISTEN_HOST": "0.0.0.0", "HTTP_HOST": "::1", "HTTP_PORT": "-1"})
    assert (own.http_host, own.http_port) == ("::1", -1)


def test_limit_and_tls_settings_come_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.rate_limit_per_s,
        defaults.rate_limit_burst,
        defaults.max_streams_per_key,
        defaults.max_message_bytes,
        defaults.grpc_tls_cert_file,
    ) == (100.0, 200, 20, 65536, None)
    settings = Settings.from_env(
        {
            "RATE_LIMIT_PER_S": "5",
            "RATE_LIMIT_BURST": "7",
            "MAX_STREAMS_PER_KEY": "3",
            "MAX_MESSAGE_BYTES": "1024",
            "MAX_READ_WAIT_S": "2.5",
            "GRPC_TLS_CERT_FILE": "/certs/server.pem",
            "GRPC_TLS_KEY_FILE": "/certs/server.key",
            "GRPC_TLS_CLIENT_CA_FILE": "/certs/ca.pem",
        }
    )
    assert settings.rate_limit_per_s == 5.0 and settings.rate_limit_burst == 7
    assert settings.max_streams_per_key == 3 and settings.max_message_bytes == 1024
    assert settings.max_read_wait_s == 2.5
    assert settings.grpc_tls_cert_file == Path("/certs/server.pem")
    assert settings.grpc_tls_key_file == Path("/certs/server.key")
    assert settings.grpc_tls_client_ca_file == Path("/certs/ca.pem")
