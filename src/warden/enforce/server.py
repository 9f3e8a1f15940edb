"""Running the gateway: its own SVID (renewed into the live TLS contexts), uvicorn with the
mTLS protocol, the in-process policy engine, group-committed records, and the feed follower."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from warden.audit.setup import open_decision_log
from warden.clock import utcnow
from warden.config import Settings
from warden.enforce.decision_header import DecisionHeaderSigner
from warden.enforce.gateway import Gateway
from warden.enforce.mcp.pins import ToolPins
from warden.enforce.mcp.proxy import McpProxy
from warden.enforce.mcp.sessions import McpSessions
from warden.enforce.obligations import Throttle, Throttles
from warden.enforce.policy_follower import PolicyFollower
from warden.enforce.routes import RouteTable, load_routes
from warden.enforce.upstream_client import UpstreamPool, upstream_ssl_context
from warden.errors import ConfigError
from warden.identity.authority import IdentityAuthority, open_authority
from warden.identity.feed import PrincipalView
from warden.identity.feed_client import HttpFeedFollower
from warden.identity.spiffe_id import SpiffeId
from warden.identity.verifier import CredentialVerifier
from warden.metrics import bound_port, probe_server, process_metrics
from warden.policy.engine import PolicyEngine
from warden.policy.setup import bundle_path, open_policy_engine
from warden.response.setup import open_response_engine
from warden.risk.setup import SAVE_EVERY_S, learning_of, open_risk_engine, save_baselines
from warden.server.run import ServerCredentials, write_server_credentials
from warden.shared.client import Breaker, TlsFiles, connect
from warden.shared.gate import SharedGate
from warden.shared.redis_state import RedisThrottles, RedisWindows
from warden.transport import serving
from warden.transport.loop import run as run_loop
from warden.transport.loop import tune_for_serving
from warden.transport.serving import GRACEFUL_SHUTDOWN_S
from warden.transport.uvicorn_mtls import bounded_protocol, client_ssl_context, server_ssl_context
from warden.trust.dlp import Dlp
from warden.trust.events import TrustEvents
from warden.trust.health import HealthBook, health_rules
from warden.trust.windows import DlpWindows

log = logging.getLogger("warden.gateway")
FEED_POLL_S = 0.05


class GatewayServer:
    """``warden gateway``: the enforcement point for HTTP APIs."""

    def __init__(
        self,
        authority: IdentityAuthority,
        *,
        routes: RouteTable | None = None,
        engine: PolicyEngine | None = None,
        host: str | None = None,
        port: int | None = None,
        status: PrincipalView | None = None,
        instance: str = "",
    ) -> None:
        """``status``: where principal status comes from; by default the local store's feed,
        or, for a gateway in its own process, an ``HttpFeedFollower`` of the control plane."""
        settings = authority.settings
        self.authority = authority
        self.host = host or settings.gateway_host
        self.port = settings.gateway_port if port is None else port
        if routes is None:
            if settings.gateway_routes is None:
                raise ConfigError("the gateway needs routes (gateway_routes or --routes)")
            routes = load_routes(settings.gateway_routes)
        self.engine = engine or open_policy_engine(authority)
        self.spiffe_id = str(
            SpiffeId.for_principal(authority.trust_domain, "svc", settings.gateway_name)
        )
        # Each worker process keeps its own SVID files: ``instance`` names its directory.
        self.credentials = write_server_credentials(
            authority,
            settings.state_dir / "run" / settings.gateway_name / (instance or "main"),
            self.host,
            name=settings.gateway_name,
        )
        # Following the control plane: the principal feed and the policy bundle come from it,
        # over mTLS with this gateway's SVID.
        self.policy_follower: PolicyFollower | None = None
        self._control_context: ssl.SSLContext | None = None
        if settings.control_plane_url:
            self._control_context = client_ssl_context(
                ca_file=self.credentials.ca_file,
                certfile=self.credentials.certfile,
                keyfile=self.credentials.keyfile,
            )
            if status is None:
                status = HttpFeedFollower(
                    settings.control_plane_url,
                    self._control_context,
                    max_staleness_s=settings.feed_max_staleness_s,
                ).start()
            self.policy_follower = PolicyFollower(
                settings.control_plane_url,
                self._control_context,
                self.engine,
                settings.policy_max_age_s,
            ).start()
        self.status = status
        self._server_context = server_ssl_context(
            certfile=self.credentials.certfile,
            keyfile=self.credentials.keyfile,
            ca_file=self.credentials.ca_file,
            require_client_cert=False,
        )
        self._upstream_context = upstream_ssl_context(
            str(self.credentials.certfile),
            str(self.credentials.keyfile),
            str(self.credentials.ca_file),
        )
        self.recorder = open_decision_log(authority)
        self.pins = ToolPins(authority.store)
        # Data-loss windows and workload health feed every decision, live.
        self.events = TrustEvents()
        self.events.subscribe(
            lambda event: self.recorder.note("trust", event.to_dict(), subject=event.agent)
        )
        # One breaker for every Redis call of this process: once Redis fails, none of them
        # waits out a timeout for a second.
        self.breaker = Breaker()
        # rediss:// URLs: this gateway's SVID to Redis, Redis's certificate checked.
        tls = TlsFiles(
            self.credentials.certfile, self.credentials.keyfile, self.credentials.ca_file
        )
        if authority.fence is not None:
            authority.fence.client = connect(settings.redis_url, tls)
        self.windows, throttles = shared_state(settings, self.breaker, tls)
        self.health = HealthBook(authority.store, self.events, health_rules(settings))
        self.engine.set_signal_source("dlp", self.windows)
        self.engine.set_signal_source("health", self.health)
        # Risk: every request learned from and scored; trust events raise it.
        self.risk, self._baselines = open_risk_engine(
            authority.store,
            self.engine,
            self.events,
            authority.ca.log_keys().fingerprint,
            authority.settings.redis_url,
            self.breaker,
            tls,
            learning_of(authority.settings),
        )
        # Playbooks: what this enforcement point sees (risk, DLP, health, decisions) can
        # contain an agent everywhere.
        self.response = open_response_engine(
            authority,
            self.recorder,
            runner=self.spiffe_id,
            risk=self.risk,
            events=self.events,
        )
        self.gateway = Gateway(
            authority=authority,
            engine=self.engine,
            recorder=self.recorder,
            routes=routes,
            upstreams=UpstreamPool(self._upstream_context, settings.gateway_upstream_timeout_s),
            signer=self._signer(self.credentials),
            spiffe_id=self.spiffe_id,
            dlp=Dlp(
                self.windows,
                self.events,
                bulk_records=settings.dlp_bulk_records,
                allowed_hosts=frozenset(h.lower() for h in settings.dlp_allowed_hosts),
            )
            if settings.dlp_enabled
            else None,
            region=settings.gateway_region,
            risk=self.risk,
            throttles=throttles,
            gate=SharedGate(settings.redis_url, self.breaker, tls) if settings.redis_url else None,
            response=self.response,
            verifier=None
            if status is None
            else CredentialVerifier(
                lambda: authority.ca.bundle, status, clock_skew_s=settings.clock_skew_s
            ),
        )
        self.metrics = process_metrics("gateway", status or authority.status, self.engine)
        self.gateway.metrics = self.metrics
        self.probes = probe_server(
            self.metrics, settings.metrics_host, settings.gateway_metrics_port
        )
        self.mcp = McpProxy(
            self.gateway, McpSessions(authority.store), self.pins, settings.mcp_max_event_bytes
        )
        self.gateway.mcp = self.mcp
        config = uvicorn.Config(
            self.gateway,
            host=self.host,
            port=self.port,
            http=bounded_protocol(
                settings.gateway_max_head_bytes, settings.gateway_client_timeout_s
            ),
            loop="uvloop" if os.name == "posix" else "asyncio",
            ssl_certfile=str(self.credentials.certfile),
            ssl_context_factory=lambda _config, _default: self._server_context,
            log_level="warning",
            access_log=False,
            # Client addresses come from the socket, never from X-Forwarded-For.
            proxy_headers=False,
            lifespan="off",
            # A stop waits this long for requests under way, then closes what is left (a
            # client's idle keep-alive connection would otherwise hold the stop open).
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def save_baselines(self) -> None:
        save_baselines(self.risk, self._baselines)

    def _signer(self, creds: ServerCredentials) -> DecisionHeaderSigner:
        chain = x509.load_pem_x509_certificates(creds.certfile.read_bytes())
        key = serialization.load_pem_private_key(creds.keyfile.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return DecisionHeaderSigner(chain, key, self.spiffe_id)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def probes_url(self) -> str:
        """Where /livez, /readyz and /metrics are served (plain HTTP)."""
        return f"http://{self.probes.config.host}:{bound_port(self.probes)}"

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped; ``sockets``: a listening socket shared by worker processes."""
        self._loop = asyncio.get_running_loop()
        # Another process (the control plane, an operator) may change the bundle or the work
        # orders in the shared store: this gateway follows both.
        if self.policy_follower is None:
            self.engine.administrator.watch(bundle_path(self.authority))
        poll_s = self.authority.settings.store_poll_s
        duties = asyncio.gather(
            serving.every(
                FEED_POLL_S, self.authority.status.catch_up, "following the principal feed"
            ),
            self._renew_svid(),
            self.mcp.streams.run(),
            serving.every(poll_s, self.pins.refresh, "reloading held MCP tools"),
            serving.every(poll_s, self.health.refresh, "reassessing workload health"),
            serving.every(SAVE_EVERY_S, self.save_baselines, "saving risk baselines"),
            serving.every(poll_s, self.engine.reload_work_orders, "reloading work orders"),
        )
        probes = asyncio.create_task(self.probes.serve())
        if self.gateway.gate is not None:
            await self.gateway.gate.warm()
        try:
            await self._server.serve(sockets=sockets)
        finally:
            self.probes.should_exit = True
            self.engine.administrator.stop()
            if self.policy_follower is not None:
                self.policy_follower.stop()
            if isinstance(self.status, HttpFeedFollower):
                self.status.stop()
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await probes
            duties.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await duties
            await self.gateway.upstreams.close()
            if self.gateway.gate is not None:
                await self.gateway.gate.close()
            await asyncio.to_thread(self.save_baselines)
            if self.response is not None:
                await asyncio.to_thread(self.response.close)  # runs under way finish
            await asyncio.to_thread(self.recorder.close)  # what waits is written, then sealed

    async def _renew_svid(self) -> None:
        while True:
            await asyncio.sleep(1)
            if utcnow() >= self.credentials.renew_at:
                await asyncio.to_thread(self.renew_svid)

    def renew_svid(self) -> None:
        """A fresh SVID into the live server and upstream contexts and the header signer."""
        creds = write_server_credentials(
            self.authority,
            self.credentials.directory,
            self.host,
            name=self.authority.settings.gateway_name,
        )
        certfile, keyfile = str(creds.certfile), str(creds.keyfile)
        scratch = server_ssl_context(
            certfile=creds.certfile,
            keyfile=creds.keyfile,
            ca_file=creds.ca_file,
            require_client_cert=False,
        )
        del scratch  # it loaded: the pair matches
        signer = self._signer(creds)

        def swap() -> None:
            self._server_context.load_cert_chain(certfile, keyfile)
            self._upstream_context.load_cert_chain(certfile, keyfile)
            if self._control_context is not None:
                self._control_context.load_cert_chain(certfile, keyfile)
            self.gateway.signer = signer

        serving.on_loop(self._loop, swap)
        self.credentials = creds

    def start_in_thread(self, timeout_s: float = 10.0) -> GatewayServer:
        self._thread, port = serving.start_in_thread(
            self._server, self.serve, "warden-gateway", timeout_s
        )
        self.port = port
        return self

    def stop(self) -> None:
        serving.stop(self._server, self._thread)


def shared_state(
    settings: Settings, breaker: Breaker, tls: TlsFiles
) -> tuple[DlpWindows | RedisWindows, Throttle]:
    """DLP windows and throttles: in Redis when one is configured (every gateway counts in
    the same windows), else in this process."""
    if not settings.redis_url:
        return DlpWindows(), Throttles()
    client = connect(settings.redis_url, tls)
    return RedisWindows(client, breaker), RedisThrottles(client, breaker)


def run_workers(settings: Settings, routes: Path | None, workers: int) -> None:
    """Serve the gateway from ``workers`` processes sharing one listening socket.

    Gateways are stateless: each worker opens its own store connections, policy engine and
    recorder, and follows the feed; the kernel spreads connections across them.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: small responses are not held back by Nagle.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.gateway_host, settings.gateway_port))
    sock.listen(2048)
    sock.setblocking(False)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                base = settings.gateway_metrics_port  # one probe port per worker
                port = base + len(children) if base else 0
                authority = open_authority(
                    settings.model_copy(update={"gateway_metrics_port": port})
                )
                server = GatewayServer(
                    authority,
                    routes=load_routes(routes) if routes else None,
                    instance=str(os.getpid()),
                )
                tune_for_serving()
                run_loop(server.serve(sockets=[sock]))
            finally:
                os._exit(0)
        children.append(pid)
    sock.close()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
