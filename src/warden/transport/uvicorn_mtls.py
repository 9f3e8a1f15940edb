"""uvicorn with mutual TLS that hands the peer certificate to the application.

uvicorn can require client certificates but does not pass them on. This protocol class (given to
``uvicorn.Config(http=MtlsHttpToolsProtocol)``) reads the connection's ``ssl_object`` once, when
the connection is made, and puts the ASGI ``tls`` extension into every request's scope:
``scope["extensions"]["tls"]["client_cert_chain"]`` is a list of PEM strings, leaf first (Python
3.11 exposes only the leaf; the handshake has already verified its chain against the CA file).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _tls_extension(transport: Any) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    leaf = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(leaf)] if leaf else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


class MtlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension in each scope."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._tls = _tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            scope = cast(dict[str, Any], self.scope)
            scope.setdefault("extensions", {})["tls"] = self._tls


def server_ssl_context(
    *, certfile: Path, keyfile: Path, ca_file: Path, require_client_cert: bool
) -> ssl.SSLContext:
    """A TLS 1.2+ server context that asks for (or requires) client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certfile), str(keyfile))
    context.load_verify_locations(cafile=str(ca_file))
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(
    *, ca_file: Path, certfile: Path | None = None, keyfile: Path | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting ``ca_file``, presenting an SVID when given."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return context
