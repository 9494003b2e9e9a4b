"""TLS and mutual TLS on the gRPC port, through the typed client and the CLI.

The test makes its own certificates (the `cryptography` package): a CA, a server
certificate for localhost and 127.0.0.1, and a client certificate, all signed by the CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from api_keys import TEST_ADMIN_API_KEY
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from service_harness import service_settings

from clients.cli import run
from clients.client import ExchangeClient, TlsFiles
from clients.errors import UnavailableError
from server.app import ExchangeApp

CONNECT_BOUND_S = 10.0


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("certs")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("exchange test CA", ca_key, _name("exchange test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        "localhost",
        server_key,
        ca_cert.subject,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(
        "trader", client_key, ca_cert.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Certificates(
        ca=_write_cert(ca_cert, folder / "ca.pem"),
        server_cert=_write_cert(server_cert, folder / "server.pem"),
        server_key=_write_key(server_key, folder / "server.key"),
        client_cert=_write_cert(client_cert, folder / "client.pem"),
        client_key=_write_key(client_key, folder / "client.key"),
    )


async def _serving(
    certificates: Certificates, database_url: str, redis_url: str, *, mutual: bool
) -> AsyncIterator[str]:
    settings = service_settings(
        database_url,
        redis_url,
        grpc_tls_cert_file=certificates.server_cert,
        grpc_tls_key_file=certificates.server_key,
        grpc_tls_client_ca_file=certificates.ca if mutual else None,
    )
    app = ExchangeApp(settings)
    await app.start()
    try:
        yield f"127.0.0.1:{app.grpc_port}"
    finally:
        await app.stop(grace_s=0.5)


@pytest.fixture
async def tls_target(
    certificates: Certificates, fresh_database_url: str, service_redis_url: str
) -> AsyncIterator[str]:
    async for target in _serving(certificates, fresh_database_url, service_redis_url, mutual=False):
        yield target


@pytest.fixture
async def mtls_target(
    certificates: Certificates, fresh_database_url: str, service_redis_url: str
) -> AsyncIterator[str]:
    async for target in _serving(certificates, fresh_database_url, service_redis_url, mutual=True):
        yield target


async def _ping(target: str, tls: TlsFiles | None) -> None:
    async with ExchangeClient.connect(
        target, timeout=CONNECT_BOUND_S, tls=tls, api_key=TEST_ADMIN_API_KEY
    ) as exchange:
        await exchange.ping()


async def test_a_client_trusting_the_ca_calls_through_tls(
    tls_target: str, certificates: Certificates
) -> None:
    await _ping(tls_target, TlsFiles(ca_file=certificates.ca))
    async with ExchangeClient.connect(
        tls_target,
        timeout=CONNECT_BOUND_S,
        tls=TlsFiles(ca_file=certificates.ca),
        api_key=TEST_ADMIN_API_KEY,
    ) as exchange:
        assert {instrument.symbol for instrument in await exchange.list_instruments()} >= {
            "BTC-USD"
        }


async def test_a_plaintext_client_fails_against_tls(tls_target: str) -> None:
    with pytest.raises(UnavailableError):
        await _ping(tls_target, None)


async def test_a_client_not_trusting_the_ca_fails_against_tls(tls_target: str) -> None:
    # The system's roots did not sign the test CA's server certificate.
    with pytest.raises(UnavailableError):
        await _ping(tls_target, TlsFiles())


async def test_mutual_tls_takes_a_client_with_a_certificate_of_the_ca(
    mtls_target: str, certificates: Certificates
) -> None:
    tls = TlsFiles(
        ca_file=certificates.ca,
        cert_file=certificates.client_cert,
        key_file=certificates.client_key,
    )
    await _ping(mtls_target, tls)


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    mtls_target: str, certificates: Certificates
) -> None:
    with pytest.raises(UnavailableError):
        await _ping(mtls_target, TlsFiles(ca_file=certificates.ca))


async def test_mutual_tls_refuses_a_client_certificate_of_another_ca(
    mtls_target: str, certificates: Certificates, tmp_path: Path
) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _issue("another CA", other_key, _name("another CA"), other_key, ca=True)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _issue(
        "stranger", stranger_key, other_ca.subject, other_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    tls = TlsFiles(
        ca_file=certificates.ca,
        cert_file=_write_cert(stranger, tmp_path / "stranger.pem"),
        key_file=_write_key(stranger_key, tmp_path / "stranger.key"),
    )
    with pytest.raises(UnavailableError):
        await _ping(mtls_target, tls)


async def test_the_cli_calls_through_mutual_tls_with_options_or_environment(
    mtls_target: str,
    certificates: Certificates,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXCHANGE_API_KEY", TEST_ADMIN_API_KEY)
    options = [
        "--tls-ca",
        str(certificates.ca),
        "--tls-cert",
        str(certificates.client_cert),
        "--tls-key",
        str(certificates.client_key),
    ]
    assert await run(["--target", mtls_target, *options, "--json", "ping"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}

    monkeypatch.setenv("EXCHANGE_TLS_CA_FILE", str(certificates.ca))
    monkeypatch.setenv("EXCHANGE_TLS_CERT_FILE", str(certificates.client_cert))
    monkeypatch.setenv("EXCHANGE_TLS_KEY_FILE", str(certificates.client_key))
    assert await run(["--target", mtls_target, "--json", "ping", "--timeout", "10"]) == 0

    # Without a client certificate the handshake is refused: the CLI exits 1.
    monkeypatch.delenv("EXCHANGE_TLS_CERT_FILE")
    monkeypatch.delenv("EXCHANGE_TLS_KEY_FILE")
    assert await run(["--target", mtls_target, "--json", "--timeout", "2", "ping"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_tls_settings_without_both_files_are_refused(certificates: Certificates) -> None:
    from server.transport_security import server_credentials

    half = service_settings("", "", grpc_tls_cert_file=certificates.server_cert)
    with pytest.raises(ValueError, match="both"):
        server_credentials(half)
    ca_only = service_settings("", "", grpc_tls_client_ca_file=certificates.ca)
    with pytest.raises(ValueError, match="GRPC_TLS_CLIENT_CA_FILE"):
        server_credentials(ca_only)
    assert isinstance(
        server_credentials(
            service_settings(
                "",
                "",
                grpc_tls_cert_file=certificates.server_cert,
                grpc_tls_key_file=certificates.server_key,
            )
        ),
        grpc.ServerCredentials,
    )


async def test_the_cli_reports_an_unreadable_tls_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    assert await run(["--target", "127.0.0.1:1", "--tls-ca", str(missing), "ping"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot read TLS file {missing}: No such file or directory"
    ]


async def test_the_load_generator_runs_through_mutual_tls(
    mtls_target: str, certificates: Certificates, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--tls-ca", str(certificates.ca), "--tls-cert", str(certificates.client_cert)]
    options += ["--tls-key", str(certificates.client_key), "--api-key", TEST_ADMIN_API_KEY]
    argv = ["--target", mtls_target, *options, "--json", "load", "--orders", "20"]
    assert await run([*argv, "--users", "2", "--concurrency", "2", "--no-progress"]) == 0
    # The service runs in this process: its log lines share stdout with the report.
    [line] = [out for out in capsys.readouterr().out.splitlines() if out.startswith("{")]
    report = json.loads(line)
    assert (report["accepted"], report["refused"], report["errors_by_code"]) == (20, 0, {})
