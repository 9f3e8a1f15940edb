"""The principal feed over HTTP: a snapshot, then long-polls from a sequence number.

Enforcement points in other processes follow it (``warden.identity.feed_client``). A long-poll
returns as soon as the control plane's own view applies a newer entry, so a revocation reaches
followers in milliseconds; with nothing new it returns empty after ``wait`` seconds, which is the
followers' heartbeat.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from warden.identity.authority import IdentityAuthority
from warden.identity.feed import FeedEntry, PrincipalView, read_entries, read_snapshot
from warden.policy.admin import AdminAuthorizer
from warden.policy.engine import PolicyEngine
from warden.server.auth import require

CONTROL_PLANE = ("ControlPlane", "warden")
MAX_WAIT_S = 25.0
POLICY_POLL_S = 0.2  # how often a long poll looks for a new active bundle


class FeedNotifier:
    """Wakes long-polls when the view applies entries (from any thread)."""

    def __init__(self, view: PrincipalView) -> None:
        self._view = view
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        view.add_listener(self._on_entries)

    def _on_entries(self, _entries: list[FeedEntry]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_beyond(self, after: int, timeout: float) -> None:
        """Return once the view is past ``after``, or after ``timeout`` seconds."""
        self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(waiter)
        try:
            if self._view.sequence > after:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.discard(waiter)


def feed_router(authority: IdentityAuthority, authorizer: AdminAuthorizer) -> APIRouter:
    router = APIRouter()
    notifier = FeedNotifier(authority.status)

    @router.get("/v1/feed/snapshot")
    def snapshot(request: Request) -> dict[str, Any]:
        require(request, authority, authorizer, "feed.read", CONTROL_PLANE)
        return read_snapshot(authority.store).to_dict()

    @router.get("/v1/feed")
    async def entries(
        request: Request,
        after: Annotated[int, Query(ge=0)] = 0,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0.0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        await run_in_threadpool(require, request, authority, authorizer, "feed.read", CONTROL_PLANE)
        found = await run_in_threadpool(read_entries, authority.store, after, limit)
        if not found and wait > 0:
            await notifier.wait_beyond(after, wait)
            found = await run_in_threadpool(read_entries, authority.store, after, limit)
        return {"entries": [e.to_dict() for e in found], "last": found[-1].seq if found else after}

    return router


def policy_feed_router(
    authority: IdentityAuthority, authorizer: AdminAuthorizer, engine: PolicyEngine
) -> APIRouter:
    """The active policy bundle, for gateways that pull it: long-polled on its revision, so a
    new bundle reaches every gateway within a poll, and an answer (changed or not) tells the
    gateway the control plane is there (its snapshot is fresh)."""
    router = APIRouter()

    @router.get("/v1/feed/policy")
    async def active_bundle(
        request: Request,
        known: Annotated[str, Query(max_length=128)] = "",
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0.0,
    ) -> dict[str, Any]:
        await run_in_threadpool(require, request, authority, authorizer, "feed.read", CONTROL_PLANE)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            bundle = engine.administrator.active
            if bundle is not None and bundle.revision != known:
                return {
                    "name": bundle.name,
                    "version": bundle.version,
                    "revision": bundle.revision,
                    "files": {n: base64.b64encode(d).decode() for n, d in bundle.files.items()},
                }
            if asyncio.get_running_loop().time() >= deadline:
                return {"revision": bundle.revision if bundle else "", "unchanged": True}
            await asyncio.sleep(POLICY_POLL_S)

    return router
