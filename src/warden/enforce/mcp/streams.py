"""Open MCP streams, and closing them when their agent is contained.

A request is authenticated when it starts; a stream can outlive the credential it started
with. Every open stream is re-checked a few times a second (the credential unexpired, its agent
still active, not revoked): when the check fails the gateway closes the stream, so a revoked or
quarantined agent loses its open sessions within a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from warden.identity.errors import CredentialRejected
from warden.identity.verifier import CredentialVerifier, VerifiedCredential

log = logging.getLogger("warden.gateway")
SWEEP_INTERVAL_S = 0.2


@dataclass(eq=False)
class OpenStream:
    """One relayed stream: ``close`` stops it; ``reason`` says why it was stopped."""

    credential: VerifiedCredential
    session_id: str | None
    close: Callable[[], None]
    reason: str | None = None


@dataclass
class StreamWatch:
    """The streams open on this gateway process, swept on its event loop."""

    verifier: Callable[[], CredentialVerifier]
    streams: set[OpenStream] = field(default_factory=set)
    on_closed: Callable[[OpenStream], None] | None = None

    def open(
        self, credential: VerifiedCredential, session_id: str | None, close: Callable[[], None]
    ) -> OpenStream:
        stream = OpenStream(credential, session_id, close)
        self.streams.add(stream)
        return stream

    def done(self, stream: OpenStream) -> None:
        self.streams.discard(stream)

    def sweep(self) -> int:
        """Close every stream whose credential no longer holds; returns how many."""
        verifier = self.verifier()
        closed = 0
        for stream in list(self.streams):
            try:
                verifier.recheck(stream.credential)
                continue
            except CredentialRejected as exc:
                stream.reason = f"credential_{exc.code}"
            except Exception as exc:  # a status view that cannot answer: fail closed
                stream.reason = getattr(exc, "code", "status_unavailable")
            log.warning("closing a stream of %s: %s", stream.credential.spiffe_id, stream.reason)
            self.streams.discard(stream)
            stream.close()
            closed += 1
            if self.on_closed is not None:
                self.on_closed(stream)
        return closed

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.sweep()
