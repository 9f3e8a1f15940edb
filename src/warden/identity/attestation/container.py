"""Container evidence: an agent registered with its image digest and the digest of its
CycloneDX SBOM. A container launcher presents both with a one-time join token; any mismatch gets
no SVID, and the token is spent either way. The SBOM itself is kept for the trust engine.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from warden import untrusted_json
from warden.clock import as_utc, utcnow
from warden.errors import UntrustedInputError
from warden.identity.attestation.events import record_attempt
from warden.identity.errors import AttestationFailed
from warden.identity.registry import AgentRegistry
from warden.store import Store, schema

log = logging.getLogger("warden.attestation")

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_SBOM_BYTES = 8 * 1024 * 1024
MAX_TOKEN_TTL_S = 24 * 3600


def sbom_digest(sbom: bytes) -> str:
    return "sha256:" + hashlib.sha256(sbom).hexdigest()


def check_cyclonedx(sbom: bytes) -> None:
    """Refuse anything but a CycloneDX JSON document."""
    if len(sbom) > MAX_SBOM_BYTES:
        raise UntrustedInputError("the SBOM is larger than 8 MiB", code="invalid_sbom")
    try:
        document = untrusted_json.loads(sbom)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UntrustedInputError("the SBOM is not JSON", code="invalid_sbom") from exc
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise UntrustedInputError("the SBOM is not CycloneDX (bomFormat)", code="invalid_sbom")
    if not isinstance(document.get("specVersion"), str):
        raise UntrustedInputError("the SBOM has no specVersion", code="invalid_sbom")


def check_digest(value: str) -> str:
    if not DIGEST.fullmatch(value):
        raise UntrustedInputError(
            "a digest is sha256: and 64 lowercase hex digits", code="invalid_digest"
        )
    return value


class ContainerAttestor:
    """Container evidence per agent, join tokens, and their redemption."""

    def __init__(self, store: Store, agents: AgentRegistry) -> None:
        self._store = store
        self._agents = agents
        # Told of each refused attestation of a known agent (agent name, method, reason):
        # the response engine's ``attestation_failed`` trigger.
        self.on_refused: Callable[[str, str, str], None] | None = None

    def set_evidence(self, agent_name: str, *, image_digest: str, sbom: bytes) -> str:
        """Record what the agent's container must present; returns the SBOM's digest."""
        self._agents.get(agent_name)
        check_digest(image_digest)
        check_cyclonedx(sbom)
        digest = sbom_digest(sbom)
        table = schema.agent_evidence
        values = {
            "image_digest": image_digest,
            "sbom_digest": digest,
            "sbom": sbom.decode(),
            "updated_at": utcnow(),
        }
        with self._store.begin() as conn:
            updated = conn.execute(
                table.update().where(table.c.agent_name == agent_name).values(**values)
            ).rowcount
            if not updated:
                conn.execute(table.insert().values(agent_name=agent_name, **values))
        return digest

    def sbom(self, agent_name: str) -> str | None:
        table = schema.agent_evidence
        with self._store.begin() as conn:
            return conn.execute(
                select(table.c.sbom).where(table.c.agent_name == agent_name)
            ).scalar_one_or_none()

    def create_join_token(
        self, agent_name: str, *, ttl_s: int = 600, created_by: str, now: datetime | None = None
    ) -> str:
        """A one-time token for ``agent_name``'s container launcher."""
        if not 30 <= ttl_s <= MAX_TOKEN_TTL_S:
            raise UntrustedInputError("join token TTL is 30 s to 24 h", code="invalid_ttl")
        self._agents.get(agent_name)
        now = now or utcnow()
        token = secrets.token_urlsafe(32)
        with self._store.begin() as conn:
            conn.execute(
                schema.join_tokens.insert().values(
                    token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                    agent_name=agent_name,
                    expires_at=now + timedelta(seconds=ttl_s),
                    created_at=now,
                    created_by=created_by,
                )
            )
        return token

    def redeem(
        self, token: str, *, image_digest: str, sbom_digest_value: str, now: datetime | None = None
    ) -> str:
        """Spend ``token`` and check the evidence; returns the agent's name."""
        now = now or utcnow()
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        evidence = {"image_digest": image_digest[:200], "sbom_digest": sbom_digest_value[:200]}
        tokens = schema.join_tokens
        with self._store.begin() as conn:
            row = conn.execute(
                select(tokens).where(tokens.c.token_sha256 == token_hash)
            ).one_or_none()
            why = None
            agent_name = row.agent_name if row is not None else None
            if row is None:
                why = "unknown join token"
            elif row.used_at is not None:
                why = "join token already used"
            elif as_utc(row.expires_at) <= now:
                why = "join token expired"
            if row is not None and row.used_at is None:
                conn.execute(
                    tokens.update().where(tokens.c.token_sha256 == token_hash).values(used_at=now)
                )
            if why is None:
                expected = conn.execute(
                    select(schema.agent_evidence).where(
                        schema.agent_evidence.c.agent_name == agent_name
                    )
                ).one_or_none()
                if expected is None:
                    why = "the agent has no container evidence registered"
                elif not hmac.compare_digest(expected.image_digest, image_digest):
                    why = "image digest mismatch"
                elif not hmac.compare_digest(expected.sbom_digest, sbom_digest_value):
                    why = "SBOM digest mismatch"
            record_attempt(
                conn,
                method="container",
                outcome="refused" if why else "issued",
                agent_name=agent_name,
                evidence=evidence,
                reason=why or "",
            )
        if why is not None and agent_name is not None and self.on_refused is not None:
            try:
                self.on_refused(str(agent_name), "container", why)
            except Exception:
                log.exception("a refused attestation of %s was not reported", agent_name)
        if why is not None or agent_name is None:
            raise AttestationFailed(why or "unknown join token")
        return str(agent_name)
