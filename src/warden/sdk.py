"""The agent side: an identity from the SPIFFE Workload API, kept fresh, and HTTP clients that
present it.

    identity = AgentIdentity()                 # reads SPIFFE_ENDPOINT_SOCKET
    with identity.http_client("https://gateway.internal:8444") as client:
        client.get("/ledger/invoices")

No key is copied into the agent: the Workload API hands it an SVID after attesting its process,
pushes a new one before half-life, and :meth:`AgentIdentity.refresh` loads it into the live TLS
context (new connections use it; open ones finish with the old one).
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from spiffe import X509Source


class AgentIdentity:
    """This process's SVID from the Workload API."""

    def __init__(self, socket_path: str | None = None, timeout_s: float = 10.0) -> None:
        self._source = X509Source(socket_path=socket_path, timeout_in_seconds=timeout_s)
        self._dir = Path(tempfile.mkdtemp(prefix="warden-svid-"))
        os.chmod(self._dir, 0o700)
        self._lock = threading.Lock()
        self._serial: int | None = None
        self._contexts: list[ssl.SSLContext] = []
        self._write()

    @property
    def spiffe_id(self) -> str:
        return str(self._source.get_x509_context().default_svid.spiffe_id)

    def _write(self) -> bool:
        """Write the current SVID (0600) if it changed; True when it did."""
        context = self._source.get_x509_context()
        svid = context.default_svid
        if svid.leaf.serial_number == self._serial:
            return False
        bundle = context.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in svid.cert_chain)
        key = svid.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        roots = b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in (bundle.x509_authorities if bundle else [])
        )
        for name, data in (("svid.pem", chain), ("key.pem", key), ("bundle.pem", roots)):
            path = self._dir / name
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(path.with_suffix(".tmp"), path)
        self._serial = svid.leaf.serial_number
        return True

    def ssl_context(self) -> ssl.SSLContext:
        """A client context presenting the SVID and trusting the trust domain's bundle."""
        with self._lock:
            context = ssl.create_default_context(cafile=str(self._dir / "bundle.pem"))
            context.load_cert_chain(str(self._dir / "svid.pem"), str(self._dir / "key.pem"))
            self._contexts.append(context)
            return context

    def refresh(self) -> bool:
        """Load a rotated SVID into every context made so far; True when it rotated."""
        with self._lock:
            if not self._write():
                return False
            for context in self._contexts:
                context.load_cert_chain(str(self._dir / "svid.pem"), str(self._dir / "key.pem"))
            return True

    def http_client(self, base_url: str, **kwargs: object) -> httpx.Client:
        """An httpx client that authenticates with this identity (mTLS)."""
        return httpx.Client(base_url=base_url, verify=self.ssl_context(), **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self._source.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> AgentIdentity:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
