"""The policy administrator: which bundle is active, which one shadows it, and the rules a
bundle must pass to become either.

A bundle becomes active only after it parses, validates against its schema, passes its own
tests, carries a trusted signature (when signatures are required, or whenever it is signed),
and has a higher version than the last one activated (no rollback). The swap is atomic; on any
failure the previous good bundle stays active and the failure is recorded. A watcher reloads
the bundle when its files change.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from warden.clock import utcnow
from warden.errors import WardenError
from warden.policy.bundle import BundleFiles, CompiledBundle, compile_bundle
from warden.policy.errors import BundleRejected
from warden.policy.signing import verify_signature
from warden.policy.testing import run_bundle_tests
from warden.store import Store, schema

log = logging.getLogger("warden.policy")
ACTIVE_KEY = "policy_bundle_active"  # "<version> <revision>", one value so it changes whole


class PolicyAdministrator:
    """Activates bundles by the rules above and tells listeners when the active one changes."""

    def __init__(
        self,
        store: Store,
        *,
        trusted_keys: list[Ed25519PublicKey] | None = None,
        require_signature: bool = False,
    ) -> None:
        self._store = store
        self._trusted = trusted_keys or []
        self._require_signature = require_signature
        self._lock = threading.Lock()
        self.active: CompiledBundle | None = None
        self.shadow: CompiledBundle | None = None
        self._listeners: list[Callable[[], None]] = []
        self._watch_stop = threading.Event()

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def check(self, path: Path) -> CompiledBundle:
        """Everything activation checks except the version: signature, parse, schema, tests."""
        try:
            files = BundleFiles.read(path)
        except WardenError as exc:
            raise BundleRejected(str(path), exc.message) from exc
        except OSError as exc:
            raise BundleRejected(str(path), f"cannot read: {exc}") from exc
        return self.check_files(files)

    def check_files(self, files: BundleFiles) -> CompiledBundle:
        """:meth:`check` for files already read (a bundle pulled from the control plane)."""
        path = files.source
        try:
            if self._require_signature or files.files.get("bundle.sig") is not None:
                if not self._trusted and self._require_signature:
                    raise BundleRejected(files.source, "signatures required, no trusted key")
                if self._trusted:
                    verify_signature(files, self._trusted)
            bundle = compile_bundle(files)
        except BundleRejected:
            raise
        except WardenError as exc:
            raise BundleRejected(path, exc.message) from exc
        failed = [r for r in run_bundle_tests(bundle) if not r.passed]
        if failed:
            first = failed[0]
            raise BundleRejected(
                bundle.source,
                f"{len(failed)} policy test(s) fail, first {first.file}: {first.name}: "
                f"{'; '.join(first.problems)}",
            )
        return bundle

    def activate(self, path: Path) -> CompiledBundle:
        """Make the bundle at ``path`` active, or raise :class:`BundleRejected` and keep the
        current one."""
        return self._activate(str(path), lambda: self.check(path))

    def activate_files(self, files: BundleFiles) -> CompiledBundle:
        """:meth:`activate` for files already read (a bundle pulled from the control plane):
        the same signature, schema, test and no-rollback checks."""
        return self._activate(files.source, lambda: self.check_files(files))

    def _activate(self, path: str, check: Callable[[], CompiledBundle]) -> CompiledBundle:
        with self._lock:
            try:
                bundle = check()
                if self.active is not None and bundle.revision == self.active.revision:
                    return self.active  # the same bundle: nothing to do
                self._claim(bundle)
            except BundleRejected as exc:
                self._record(str(path), None, "rejected", exc.why)
                log.error("%s", exc.message)
                raise
            self.active = bundle
            self._record(str(path), bundle, "activated", "")
        log.info("policy bundle %s v%s active (%s)", bundle.name, bundle.version, bundle.revision)
        for listener in self._listeners:
            listener()
        return bundle

    def _claim(self, bundle: CompiledBundle) -> None:
        """Record ``bundle`` as the active one unless that would roll back. Several
        processes (gateways, control planes) activate bundles on one store: the check and the
        write are one compare-and-set, retried if another process moved first."""
        for _ in range(10):
            stored = self._store.get_meta(ACTIVE_KEY)
            if stored is not None:
                version_text, _, revision = stored.partition(" ")
                last = int(version_text)
                if bundle.version == last and bundle.revision == revision:
                    return  # already recorded (by this or another process)
                if bundle.version <= last:
                    raise BundleRejected(
                        bundle.source,
                        f"version {bundle.version} does not follow the active version {last} "
                        "(no rollback; raise the version to change a bundle)",
                    )
            if self._store.compare_and_set_meta(
                ACTIVE_KEY, stored, f"{bundle.version} {bundle.revision}"
            ):
                return
        raise BundleRejected(bundle.source, "the active bundle kept changing; try again")

    def set_shadow(self, path: Path | None) -> CompiledBundle | None:
        """Decide a candidate bundle beside the active one (never enforced); None stops it."""
        if path is None:
            self.shadow = None
        else:
            try:
                self.shadow = self.check(path)
            except BundleRejected as exc:
                self._record(str(path), None, "rejected", f"as shadow: {exc.why}")
                raise
            self._record(str(path), self.shadow, "shadowing", "")
        for listener in self._listeners:
            listener()
        return self.shadow

    def watch(self, path: Path, interval_s: float = 1.0) -> threading.Thread:
        """Reload ``path`` whenever its content changes (hot reload)."""

        def loop() -> None:
            seen = self.active.revision if self.active is not None else None
            while not self._watch_stop.wait(interval_s):
                try:
                    revision = BundleFiles.read(path).digest()
                except Exception as exc:  # a half-written bundle: try again next time
                    log.warning("cannot read policy bundle %s: %s", path, exc)
                    continue
                if revision == seen:
                    continue
                seen = revision
                with contextlib.suppress(BundleRejected):  # recorded; the old one stays active
                    self.activate(path)

        thread = threading.Thread(target=loop, daemon=True, name="warden-policy-watch")
        thread.start()
        return thread

    def stop(self) -> None:
        self._watch_stop.set()

    def _record(
        self, source: str, bundle: CompiledBundle | None, outcome: str, reason: str
    ) -> None:
        try:
            with self._store.begin() as conn:
                conn.execute(
                    schema.policy_events.insert().values(
                        at=utcnow(),
                        source=source[:2000],
                        name=bundle.name if bundle else "",
                        version=bundle.version if bundle else 0,
                        revision=bundle.revision if bundle else "",
                        outcome=outcome,
                        reason=reason[:2000],
                    )
                )
        except WardenError as exc:
            log.error("cannot record policy event: %s", exc)
