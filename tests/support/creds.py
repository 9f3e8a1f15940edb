"""Writing SVIDs to files and building TLS client contexts from them, as a workload would."""

from __future__ import annotations

import ssl
from pathlib import Path

from warden.identity.ca import IssuedX509
from warden.transport.uvicorn_mtls import client_ssl_context


def write_svid(directory: Path, issued: IssuedX509, bundle_pem: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "svid.pem").write_bytes(issued.cert_chain_pem())
    (directory / "key.pem").write_bytes(issued.key_pem())
    (directory / "bundle.pem").write_bytes(bundle_pem)
    return directory


def context_for(directory: Path | None, ca_file: Path) -> ssl.SSLContext:
    if directory is None:
        return client_ssl_context(ca_file=ca_file)
    return client_ssl_context(
        ca_file=ca_file, certfile=directory / "svid.pem", keyfile=directory / "key.pem"
    )
