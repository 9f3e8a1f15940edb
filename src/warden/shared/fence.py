"""The revocation fence: a revocation is in Redis before it is committed, and every gateway
asks Redis at each request, so no request is decided after a revocation commits.

The principal feed (sequenced in the store, followed by every gateway) stays the truth; it
reaches a gateway within its poll interval. The fence closes that interval: the registry
writes a principal's new restrictive status (disabled, revoked, quarantined, deleted) or a
revoked credential here first, inside the transaction that commits it, and lifts a
principal's entry only after an enable or release has committed. Entries expire after
``ttl_s``, long after every gateway's feed has the change (a gateway whose feed is that far
behind denies everything anyway).

Failures: a fence that cannot be written does not stop a revocation (it commits, and reaches
gateways through the feed); a gateway that cannot read the fence relies on the feed alone.
The fence only ever restricts.
"""

from __future__ import annotations

import logging
from typing import cast

import redis

from warden.shared.client import PREFIX, connect

log = logging.getLogger("warden.shared")
RESTRICTIVE = frozenset({"disabled", "revoked", "quarantined", "deleted"})


class FenceUnavailable(Exception):
    """Redis could not be asked."""


class RevocationFence:
    def __init__(self, client: redis.Redis, ttl_s: int = 300) -> None:
        self.client = client
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, ttl_s: int = 300) -> RevocationFence:
        return cls(connect(url), ttl_s)

    # -- written by whoever revokes ------------------------------------------------------------

    def restrict(self, spiffe_id: str, status: str, epoch: int) -> None:
        """Before the commit: the principal is ``status`` from ``epoch`` on."""
        if status in RESTRICTIVE:
            self._set(principal_key(spiffe_id), f"{status}:{epoch}")

    def revoke_credential(self, credential_id: str) -> None:
        """Before the commit: one X.509 serial or JWT ``jti`` is revoked."""
        self._set(credential_key(credential_id), "revoked")

    def lift(self, spiffe_id: str) -> None:
        """After an enable or release committed: the principal's entry no longer holds."""
        try:
            self.client.delete(principal_key(spiffe_id))
        except redis.RedisError as exc:  # it expires; until then the agent stays fenced
            log.warning("revocation fence not lifted for %s: %s", spiffe_id, exc)

    def _set(self, key: str, value: str) -> None:
        try:
            self.client.set(key, value, ex=self.ttl_s)
        except redis.RedisError as exc:
            log.warning("revocation fence not written (%s): the feed alone carries it", exc)

    # -- read by every gateway at each request -------------------------------------------------

    def check(self, spiffe_id: str, credential_id: str) -> str | None:
        """Why this credential is fenced off (a reason code), or None; raises
        :class:`FenceUnavailable` when Redis cannot say."""
        try:
            found = self.client.mget([principal_key(spiffe_id), credential_key(credential_id)])
            principal, credential = cast(list[bytes | None], found)
        except redis.RedisError as exc:
            raise FenceUnavailable(str(exc)) from exc
        return fence_reason(principal, credential)


def principal_key(spiffe_id: str) -> str:
    return f"{PREFIX}fence:p:{spiffe_id}"


def credential_key(credential_id: str) -> str:
    return f"{PREFIX}fence:c:{credential_id}"


def fence_reason(principal: bytes | None, credential: bytes | None) -> str | None:
    """Why the fence refuses a credential, from its two entries (empty or None: absent), as
    the verifier will say once the feed has the change."""
    if credential:
        return "revoked"
    if principal:
        return "principal_" + principal.decode().partition(":")[0]
    return None
