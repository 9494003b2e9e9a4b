"""TLS for the gRPC port, from the settings: none, TLS, or mutual TLS.

``GRPC_TLS_CERT_FILE`` + ``GRPC_TLS_KEY_FILE`` (PEM) turn TLS on; ``GRPC_TLS_CLIENT_CA_FILE``
(PEM bundle) also requires every client to present a certificate signed by it.
"""

from __future__ import annotations

import grpc

from server.settings import Settings


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The credentials of the gRPC port, or None for plaintext. A certificate without its
    key (or the other way round), or a client CA without TLS, is a configuration error."""
    cert_file, key_file = settings.grpc_tls_cert_file, settings.grpc_tls_key_file
    if cert_file is None and key_file is None:
        if settings.grpc_tls_client_ca_file is not None:
            raise ValueError("GRPC_TLS_CLIENT_CA_FILE needs GRPC_TLS_CERT_FILE and _KEY_FILE")
        return None
    if cert_file is None or key_file is None:
        raise ValueError("TLS needs both GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE")
    client_ca = settings.grpc_tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(key_file.read_bytes(), cert_file.read_bytes())],
        root_certificates=None if client_ca is None else client_ca.read_bytes(),
        require_client_auth=client_ca is not None,
    )
