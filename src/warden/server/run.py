"""Running the control plane: its own SVID, mTLS on uvicorn, and its background duties.

The server holds ``spiffe://<td>/svc/control-plane`` (with DNS and IP SANs for ordinary TLS
clients). It renews that SVID before half-life and loads it into the live SSL context, after
checking the new pair on a scratch context (a failed load would leave the live one broken).
The verifier's status view follows the principal feed every ``FEED_POLL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import uvicorn

from warden.audit.setup import open_decision_log
from warden.clock import utcnow
from warden.console.app import Console
from warden.console.oidc import open_oidc
from warden.identity.authority import IdentityAuthority
from warden.identity.ca.authority import BUNDLE_SEQUENCE_KEY
from warden.identity.ca.keys import write_private_file
from warden.identity.spiffe_id import SpiffeId
from warden.identity.workload_api import WorkloadApi, WorkloadApiServer
from warden.metrics import bound_port, probe_server, process_metrics
from warden.policy.admin import AdminAuthorizer
from warden.policy.setup import bundle_path, open_policy_engine
from warden.response.setup import open_response_engine
from warden.risk.setup import SAVE_EVERY_S, learning_of, open_risk_engine, save_baselines
from warden.server.app import create_app
from warden.shared.client import TlsFiles, connect
from warden.transport import serving
from warden.transport.serving import GRACEFUL_SHUTDOWN_S
from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context
from warden.trust.events import TrustEvents
from warden.trust.health import HealthBook, health_rules

log = logging.getLogger("warden.server")
SERVICE_NAME = "control-plane"
FEED_POLL_S = 0.05
CA_POLL_S = 2.0


@dataclass
class ServerCredentials:
    """Where the server's SVID, key and trust bundle are on disk, and when to renew."""

    directory: Path
    renew_at: datetime = field(default_factory=utcnow)

    @property
    def certfile(self) -> Path:
        return self.directory / "svid.pem"

    @property
    def keyfile(self) -> Path:
        return self.directory / "key.pem"

    @property
    def ca_file(self) -> Path:
        return self.directory / "bundle.pem"


def write_server_credentials(
    authority: IdentityAuthority, directory: Path, host: str, name: str = SERVICE_NAME
) -> ServerCredentials:
    """Issue a Warden server's SVID (``svc/<name>``) and write it (key 0600) into
    ``directory``."""
    dns = ["localhost", *authority.settings.server_names]
    ips = ["127.0.0.1"]
    try:
        ipaddress.ip_address(host)
        if host not in ips and host not in ("0.0.0.0", "::"):  # noqa: S104
            ips.append(host)
    except ValueError:
        dns.append(host)
    issued = authority.issuer.issue_service_x509(name, dns_names=dns, ip_addresses=ips)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    creds = ServerCredentials(directory)
    for path in (creds.keyfile, creds.certfile, creds.ca_file):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    write_private_file(creds.keyfile, issued.key_pem())
    write_private_file(creds.certfile, issued.cert_chain_pem())
    write_private_file(creds.ca_file, authority.ca.bundle.to_pem())
    lifetime = issued.cert.not_valid_after_utc - issued.cert.not_valid_before_utc
    creds.renew_at = issued.cert.not_valid_before_utc + lifetime / 2
    return creds


class ControlPlaneServer:
    """The control plane on uvicorn with mTLS; run in the foreground or in a thread."""

    def __init__(
        self,
        authority: IdentityAuthority,
        *,
        host: str | None = None,
        port: int | None = None,
        authorizer: AdminAuthorizer | None = None,
        workload_api: WorkloadApi | None = None,
    ) -> None:
        self.authority = authority
        self.workload_api = WorkloadApiServer(
            workload_api or WorkloadApi(authority, authority.attestor),
            authority.settings.workload_socket_path,
        )
        self.host = host or authority.settings.api_host
        self.port = authority.settings.api_port if port is None else port
        self.credentials = write_server_credentials(
            authority, authority.settings.state_dir / "run" / SERVICE_NAME, self.host
        )
        self._context = server_ssl_context(
            certfile=self.credentials.certfile,
            keyfile=self.credentials.keyfile,
            ca_file=self.credentials.ca_file,
            require_client_cert=False,
        )
        self.policy = open_policy_engine(authority)
        # The control plane's log also takes in every identity and policy event.
        self.log = open_decision_log(authority, follow_events=True)
        self.events = TrustEvents()
        self.events.subscribe(
            lambda event: self.log.note("trust", event.to_dict(), subject=event.agent)
        )
        self.health = HealthBook(authority.store, self.events, health_rules(authority.settings))
        self.policy.set_signal_source("health", self.health)
        tls = TlsFiles(
            self.credentials.certfile, self.credentials.keyfile, self.credentials.ca_file
        )
        if authority.fence is not None:  # revocations fenced with this server's SVID
            authority.fence.client = connect(authority.settings.redis_url, tls)
        self.risk, self._baselines = open_risk_engine(
            authority.store,
            self.policy,
            self.events,
            authority.ca.log_keys().fingerprint,
            authority.settings.redis_url,
            tls=tls,
            learning=learning_of(authority.settings),
        )
        self.response = open_response_engine(
            authority,
            self.log,
            runner=str(SpiffeId.for_principal(authority.trust_domain, "svc", SERVICE_NAME)),
            risk=self.risk,
            events=self.events,
        )
        if self.response is not None:
            authority.containers.on_refused = self._attestation_failed
        self.metrics = process_metrics("control-plane", authority.status, self.policy)
        self.probes = probe_server(
            self.metrics, authority.settings.metrics_host, authority.settings.api_metrics_port
        )
        authorizer = authorizer or AdminAuthorizer()
        self.console = (
            Console(
                authority,
                authorizer,
                self.log,
                engine=self.policy,
                response=self.response,
                health=self.health,
                oidc=open_oidc(authority.settings),
            )
            if authority.settings.console_enabled
            else None
        )
        app = create_app(
            authority,
            authorizer,
            self.policy,
            self.log,
            self.health,
            self.risk,
            self.metrics,
            self.response,
            self.console,
        )
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            http=MtlsHttpToolsProtocol,
            loop="uvloop" if os.name == "posix" else "asyncio",
            ssl_certfile=str(self.credentials.certfile),
            ssl_context_factory=lambda _config, _default: self._context,
            log_level="warning",
            access_log=False,
            # Client addresses come from the socket, never from X-Forwarded-For.
            proxy_headers=False,
            lifespan="off",
            # A stop waits this long for requests under way, then closes what is left (a
            # client's idle keep-alive connection would otherwise hold the stop open).
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _attestation_failed(self, agent_name: str, method: str, reason: str) -> None:
        """A known agent's workload failed to attest: the playbooks' trigger."""
        if self.response is not None:
            spiffe_id = self.authority.agents.get(agent_name).spiffe_id
            self.response.on_attestation_failed(spiffe_id, reason, method)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def console_link(self, operator: str) -> str:
        """A one-time login link to this server's console for ``operator``."""
        token = Console.link_for(self.authority, operator, by="warden up")
        return f"{self.url}/console/login?token={token}"

    @property
    def probes_url(self) -> str:
        """Where /livez, /readyz and /metrics are served (plain HTTP)."""
        return f"http://{self.probes.config.host}:{bound_port(self.probes)}"

    async def serve(self) -> None:
        """Serve until stopped, with the feed follower and SVID renewal beside it."""
        self._loop = asyncio.get_running_loop()
        await self.workload_api.start()
        self.policy.administrator.watch(bundle_path(self.authority))
        duties = asyncio.gather(
            serving.every(
                FEED_POLL_S, self.authority.status.catch_up, "following the principal feed"
            ),
            self._renew_svid(),
            self._follow_ca(),
            serving.every(
                self.authority.settings.store_poll_s,
                self.policy.reload_work_orders,
                "reloading work orders",
            ),
            serving.every(
                self.authority.settings.store_poll_s,
                self.health.refresh,
                "reassessing workload health",
            ),
            serving.every(SAVE_EVERY_S, self.save_baselines, "saving risk baselines"),
        )
        probes = asyncio.create_task(self.probes.serve())
        try:
            await self._server.serve()
        finally:
            self.probes.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await probes
            self.policy.administrator.stop()
            await self.workload_api.stop()
            duties.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await duties
            await asyncio.to_thread(self.save_baselines)
            if self.response is not None:
                await asyncio.to_thread(self.response.close)  # runs under way finish
            await asyncio.to_thread(self.log.close)  # what waits is written, then sealed

    def save_baselines(self) -> None:
        save_baselines(self.risk, self._baselines)

    async def _follow_ca(self) -> None:
        """Pick up a rotation made by another process (`warden ca rotate`)."""
        while True:
            await asyncio.sleep(CA_POLL_S)
            try:
                current = await asyncio.to_thread(
                    self.authority.store.get_meta, BUNDLE_SEQUENCE_KEY
                )
                if current is not None and int(current) != self.authority.ca.bundle.sequence:
                    await asyncio.to_thread(self.authority.ca.refresh)
            except Exception as exc:
                log.warning("cannot check the CA for rotations: %s", exc)

    async def _renew_svid(self) -> None:
        while True:
            await asyncio.sleep(5)
            if utcnow() >= self.credentials.renew_at:
                await asyncio.to_thread(self.renew_svid)

    def renew_svid(self) -> None:
        """Issue a fresh SVID and load it into the live context for new connections."""
        creds = write_server_credentials(self.authority, self.credentials.directory, self.host)
        scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        scratch.load_cert_chain(str(creds.certfile), str(creds.keyfile))  # raises if mismatched
        serving.on_loop(
            self._loop,
            lambda: self._context.load_cert_chain(str(creds.certfile), str(creds.keyfile)),
        )
        self.credentials = creds
        log.info("control-plane SVID renewed; next renewal at %s", creds.renew_at)

    # -- in a thread (tests, `warden demo`) -------------------------------------------------

    def start_in_thread(self, timeout_s: float = 10.0) -> ControlPlaneServer:
        """Start serving in a daemon thread and wait until it listens."""
        self._thread, port = serving.start_in_thread(
            self._server, self.serve, "warden-control-plane", timeout_s
        )
        self.port = port
        return self

    def stop(self) -> None:
        serving.stop(self._server, self._thread)
