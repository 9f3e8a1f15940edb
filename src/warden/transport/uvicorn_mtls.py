"""uvicorn with mutual TLS that hands the peer certificate to the application.

uvicorn can require client certificates but does not pass them on. This protocol class (given to
``uvicorn.Config(http=MtlsHttpToolsProtocol)``) reads the connection's ``ssl_object`` once, when
the connection is made, and puts the ASGI ``tls`` extension into every request's scope:
``scope["extensions"]["tls"]["client_cert_chain"]`` is a list of PEM strings, leaf first (Python
3.11 exposes only the leaf; the handshake has already verified its chain against the CA file).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("warden.transport")


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


class HeadTooLarge(Exception):
    """A request line and headers over the bound: answered 431 before the app sees it."""


class MtlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension in each scope, and bounds on
    the request head that uvicorn does not set: its size (checked as it arrives, so a client
    cannot make the server buffer an endless header) and the time it may take (so a client
    trickling bytes, or connecting and saying nothing, cannot hold a connection open)."""

    max_head_bytes = 65536
    head_timeout_s = 10.0
    _tls: dict[str, Any] | None = None
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._tls = _tls_extension(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()  # uvicorn's idle timer between requests
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, HeadTooLarge):
                raise
            log.warning("request head over %d bytes from %s", self.max_head_bytes, self.client)
            self._refuse(b"431 Request Header Fields Too Large", b"request_head_too_large")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self._refuse(b"400 Bad Request", b"malformed_request")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._start_head_timer()
        if self._tls is not None:
            scope = cast(dict[str, Any], self.scope)
            scope.setdefault("extensions", {})["tls"] = self._tls

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            raise HeadTooLarge()

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:  # not while a request is served
            log.info("closing a connection that sent no complete request head in time")
            self.transport.close()

    def _refuse(self, status: bytes, reason: bytes) -> None:
        body = b'{"reason":"' + reason + b'"}'
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()


def bounded_protocol(max_head_bytes: int, head_timeout_s: float) -> type[MtlsHttpToolsProtocol]:
    """The protocol class with these bounds (uvicorn takes a class, so the bounds are its
    attributes)."""
    return type(
        "BoundedMtlsHttpToolsProtocol",
        (MtlsHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "head_timeout_s": head_timeout_s},
    )


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
