"""Reaching upstreams: mTLS with the gateway's own SVID, and the upstream's SPIFFE ID checked
after the handshake and before a byte of the request is sent (Python's ssl cannot match URI
SANs, so the chain is verified by the TLS stack and the identity here)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
from cryptography import x509

from warden.errors import EnforcementError


class UpstreamIdentityMismatch(EnforcementError):
    code = "upstream_identity_mismatch"

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"upstream presented {got or 'no SPIFFE ID'}, expected {expected}")


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body of ``response``, or None once it passes ``limit`` bytes (read no
    further). ``StreamReader.read(n)`` returns what has arrived, not ``n`` bytes: an answer
    read with it would be judged, and passed, in part."""
    declared = response.content_length
    if declared is not None and declared > limit:
        return None
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def peer_spiffe_id(transport: asyncio.Transport) -> str:
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return ""
    try:
        sans = (
            x509.load_der_x509_certificate(der)
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value
        )
    except (ValueError, x509.ExtensionNotFound):
        return ""
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if len(uris) == 1 else ""


class SpiffeConnector(aiohttp.TCPConnector):
    """A connection pool to one upstream that refuses any peer but ``expected_id``."""

    def __init__(self, expected_id: str, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(ssl=ssl_context, **kwargs)
        self.expected_id = expected_id

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        presented = peer_spiffe_id(transport)
        if presented != self.expected_id:
            transport.close()
            raise UpstreamIdentityMismatch(self.expected_id, presented)
        return transport, protocol


def upstream_ssl_context(certfile: str, keyfile: str, ca_file: str) -> ssl.SSLContext:
    """Client context: present the gateway's SVID, verify the chain to the bundle; the host
    name is not what identifies an upstream, its SPIFFE ID is (checked by the connector)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


class UpstreamPool:
    """One aiohttp session per upstream SPIFFE ID, created lazily in the serving loop."""

    def __init__(self, ssl_context: ssl.SSLContext, timeout_s: float) -> None:
        self._context = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 5))
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, expected_id: str) -> aiohttp.ClientSession:
        session = self._sessions.get(expected_id)
        if session is None or session.closed:
            connector = SpiffeConnector(
                expected_id, self._context, limit=256, enable_cleanup_closed=True
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                # One session serves every agent: a cookie one upstream sets for one agent
                # must never ride on another agent's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                # A transparent proxy: the upstream sees the agent's headers, not aiohttp's.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
            self._sessions[expected_id] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
