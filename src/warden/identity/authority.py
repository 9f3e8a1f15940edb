"""The identity authority assembled from settings: CA, registries, issuer and verifier."""

from __future__ import annotations

from dataclasses import dataclass

from warden.config import Settings
from warden.identity.attestation.container import ContainerAttestor
from warden.identity.attestation.launcher import LaunchRegistry
from warden.identity.attestation.resolver import WorkloadAttestor
from warden.identity.ca import CertificateAuthority, FileKeyManager, KeyManager
from warden.identity.enforcement_points import EnforcementPointRegistry
from warden.identity.feed import FeedCredentialStatus
from warden.identity.issuer import CredentialIssuer
from warden.identity.registry import AgentRegistry, OperatorRegistry
from warden.identity.verifier import CredentialVerifier
from warden.shared.fence import RevocationFence
from warden.store import Store, open_store


@dataclass(frozen=True)
class IdentityAuthority:
    """Everything the identity pillar offers, wired to one store and one CA."""

    settings: Settings
    store: Store
    ca: CertificateAuthority
    agents: AgentRegistry
    operators: OperatorRegistry
    issuer: CredentialIssuer
    verifier: CredentialVerifier
    status: FeedCredentialStatus
    launches: LaunchRegistry
    attestor: WorkloadAttestor
    containers: ContainerAttestor
    enforcement_points: EnforcementPointRegistry
    fence: RevocationFence | None = None  # revocations in Redis before they commit

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    @classmethod
    def from_parts(
        cls,
        settings: Settings,
        store: Store,
        keys: KeyManager,
    ) -> IdentityAuthority:
        ca = CertificateAuthority(store, keys, settings)
        status = FeedCredentialStatus(store, max_staleness_s=settings.feed_max_staleness_s)
        # Changes made in this process reach its own verifier at once; others' via the feed.
        fence = (
            RevocationFence.from_url(settings.redis_url, ttl_s=fence_ttl(settings))
            if settings.redis_url
            else None
        )
        agents = AgentRegistry(
            store, ca.trust_domain, settings, on_change=status.catch_up, fence=fence
        )
        operators = OperatorRegistry(store, ca.trust_domain, on_change=status.catch_up)
        verifier = CredentialVerifier(lambda: ca.bundle, status, clock_skew_s=settings.clock_skew_s)
        issuer = CredentialIssuer(
            ca, agents, operators, store, settings, on_change=status.catch_up, fence=fence
        )
        launches = LaunchRegistry(store, agents)
        return cls(
            settings,
            store,
            ca,
            agents,
            operators,
            issuer,
            verifier,
            status,
            launches,
            WorkloadAttestor(store, agents, launches),
            ContainerAttestor(store, agents),
            EnforcementPointRegistry(store, ca.trust_domain),
            fence,
        )


def fence_ttl(settings: Settings) -> int:
    """How long a fence entry lasts: far past the time every gateway's feed has the change
    (a gateway whose feed is older denies everything)."""
    return max(60, int(30 * settings.feed_max_staleness_s))


def file_key_manager(settings: Settings) -> FileKeyManager:
    """The default key manager: encrypted key files in the state directory."""
    return FileKeyManager(settings.state_dir / "keys", settings.key_file)


def open_authority(settings: Settings) -> IdentityAuthority:
    """Open the identity authority of an initialised installation."""
    store = open_store(settings.database)
    return IdentityAuthority.from_parts(settings, store, file_key_manager(settings))
