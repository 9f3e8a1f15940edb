"""Following the principal feed over HTTP, for enforcement points in other processes.

:class:`HttpFeedFollower` loads a snapshot from the control plane, then long-polls for newer
entries in a background thread. It is a :class:`PrincipalView`: a verifier built on it refuses
to answer (``StatusUnavailable``) once the last successful poll is older than the bound, so an
enforcement point cut off from the control plane denies everything until it catches up.
"""

from __future__ import annotations

import logging
import ssl
import threading

import httpx

from warden.identity.feed import (
    DEFAULT_MAX_STALENESS_S,
    FeedEntry,
    FeedSnapshot,
    PrincipalView,
)

log = logging.getLogger("warden.feed_client")
POLL_WAIT_S = 0.5


class HttpFeedFollower(PrincipalView):
    """A principal view fed by the control plane's ``/v1/feed`` endpoints."""

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext,
        *,
        max_staleness_s: float = DEFAULT_MAX_STALENESS_S,
        poll_wait_s: float = POLL_WAIT_S,
    ) -> None:
        super().__init__(max_staleness_s=max_staleness_s)
        self._client = httpx.Client(base_url=base_url, verify=ssl_context, timeout=poll_wait_s + 5)
        self._wait = poll_wait_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loaded = threading.Event()

    def start(self, timeout_s: float = 10.0) -> HttpFeedFollower:
        """Start following; wait until the first snapshot is loaded."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="warden-feed")
        self._thread.start()
        if not self.loaded.wait(timeout_s):
            raise TimeoutError("no snapshot from the control plane")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._wait + 6)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.loaded.is_set():
                    response = self._client.get("/v1/feed/snapshot")
                    response.raise_for_status()
                    self.load(FeedSnapshot.from_dict(response.json()))
                    self.loaded.set()
                response = self._client.get(
                    "/v1/feed", params={"after": self.sequence, "wait": self._wait}
                )
                response.raise_for_status()
                self.apply([FeedEntry.from_dict(e) for e in response.json()["entries"]])
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                # The view ages; past its bound it refuses to answer. Retry soon.
                log.warning("principal feed poll failed: %s", exc)
                self._stop.wait(0.2)
