"""A gateway's policy bundle, pulled from the control plane: long-polled on its revision,
checked and activated exactly as a local bundle is (signature, schema, tests, no rollback),
and kept while the control plane cannot be reached, until it is older than its bound; then
the gateway's engine refuses every decision (``policy_snapshot_stale``)."""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import time

import httpx

from warden.policy.bundle import BundleFiles
from warden.policy.engine import PolicyEngine
from warden.policy.errors import BundleRejected

log = logging.getLogger("warden.gateway")
WAIT_S = 10.0  # one long poll
RETRY_S = 0.5


class PolicyFollower:
    def __init__(
        self, base_url: str, ssl_context: ssl.SSLContext, engine: PolicyEngine, max_age_s: float
    ) -> None:
        self._client = httpx.Client(base_url=base_url, verify=ssl_context, timeout=WAIT_S + 5)
        self.engine = engine
        self.max_age_s = max_age_s
        self.wait_s = min(WAIT_S, max_age_s / 3)  # an answer comes well within the bound
        self.confirmed_at = 0.0  # when the control plane last answered (monotonic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        engine.freshness = self.staleness

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.confirmed_at

    def staleness(self) -> str | None:
        age = self.age_s
        if age <= self.max_age_s:
            return None
        return f"the policy bundle was last confirmed {age:.1f} s ago (bound {self.max_age_s} s)"

    def start(self, timeout_s: float = 10.0) -> PolicyFollower:
        """Pull once (the gateway starts with the control plane's bundle), then follow."""
        deadline = time.monotonic() + timeout_s
        while not self.poll(0.0):
            if time.monotonic() > deadline:
                log.error("the control plane's policy bundle could not be pulled")
                break
            time.sleep(RETRY_S)
        self._thread = threading.Thread(target=self._run, daemon=True, name="warden-policy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._client.close()

    def poll(self, wait: float | None = None) -> bool:
        """One long poll; True when the control plane answered."""
        active = self.engine.administrator.active
        known = active.revision if active is not None else ""
        try:
            answer = self._client.get(
                "/v1/feed/policy",
                params={"known": known, "wait": self.wait_s if wait is None else wait},
            )
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("policy bundle not pulled: %s", exc)
            return False
        if not body.get("unchanged"):
            try:
                files = BundleFiles(
                    source=f"control plane {body.get('name', '')} v{body.get('version', '?')}",
                    files={str(n): base64.b64decode(d) for n, d in body["files"].items()},
                )
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                log.error("the control plane's answer is not a bundle: %s", exc)
                return False
            try:
                self.engine.administrator.activate_files(files)
            except BundleRejected as exc:  # the last good bundle stays active
                log.error("pulled policy bundle refused: %s", exc.message)
        self.confirmed_at = time.monotonic()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.poll() and not self._stop.is_set():
                self._stop.wait(RETRY_S)
