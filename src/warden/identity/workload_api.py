"""The SPIFFE Workload API on a Unix socket (gRPC, the standard ``workload.proto``).

Any SPIFFE client works unchanged. The server sees who calls: grpclib hands over the
connection's socket, from which SO_PEERCRED gives the caller's pid, uid and gid, and the Unix and
launcher attestors name the agent. Keys served here are made per workload, sent only over the
socket and never stored. ``FetchX509SVID`` pushes a renewed SVID before half-life and ends the
stream (PERMISSION_DENIED) as soon as the agent stops being active or its process is gone or its
pid reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from google.protobuf import struct_pb2
from grpclib.const import Cardinality, Handler, Status
from grpclib.events import RecvRequest, listen
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream
from spiffe._proto import workload_pb2 as pb

from warden.clock import utcnow
from warden.identity.attestation.resolver import WorkloadAttestor
from warden.identity.attestation.unix import UnixEvidence, peer_credentials
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import AttestationFailed, CredentialRejected
from warden.identity.feed import FeedEntry
from warden.identity.registry import Agent

log = logging.getLogger("warden.workload_api")
HEADER = "workload.spiffe.io"
SERVICE = "/SpiffeWorkloadAPI/"
_caller: ContextVar[tuple[int, int, int]] = ContextVar("workload_api_caller")


@dataclass(eq=False)
class _OpenStream:
    spiffe_id: str
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""


class WorkloadApi:
    """The ``SpiffeWorkloadAPI`` service."""

    def __init__(
        self,
        authority: IdentityAuthority,
        attestor: WorkloadAttestor,
        *,
        svid_ttl_s: int | None = None,
        renew_fraction: float = 0.45,
        check_interval_s: float = 0.5,
    ) -> None:
        self._authority = authority
        self._attestor = attestor
        self._svid_ttl_s = svid_ttl_s
        self._renew_fraction = renew_fraction
        self._check_interval = check_interval_s
        self._streams: set[_OpenStream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        authority.status.add_listener(self._on_feed)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            SERVICE + "FetchX509SVID": Handler(
                self.fetch_x509_svid,
                Cardinality.UNARY_STREAM,
                pb.X509SVIDRequest,
                pb.X509SVIDResponse,
            ),
            SERVICE + "FetchX509Bundles": Handler(
                self.fetch_x509_bundles,
                Cardinality.UNARY_STREAM,
                pb.X509BundlesRequest,
                pb.X509BundlesResponse,
            ),
            SERVICE + "FetchJWTSVID": Handler(
                self.fetch_jwt_svid,
                Cardinality.UNARY_UNARY,
                pb.JWTSVIDRequest,
                pb.JWTSVIDResponse,
            ),
            SERVICE + "FetchJWTBundles": Handler(
                self.fetch_jwt_bundles,
                Cardinality.UNARY_STREAM,
                pb.JWTBundlesRequest,
                pb.JWTBundlesResponse,
            ),
            SERVICE + "ValidateJWTSVID": Handler(
                self.validate_jwt_svid,
                Cardinality.UNARY_UNARY,
                pb.ValidateJWTSVIDRequest,
                pb.ValidateJWTSVIDResponse,
            ),
        }

    # -- caller ------------------------------------------------------------------------------

    async def _attest(self) -> tuple[Agent, UnixEvidence]:
        pid, uid, gid = _caller.get()
        try:
            return await asyncio.to_thread(self._attestor.attest, pid, uid, gid)
        except AttestationFailed as exc:
            log.info("workload attestation refused: pid=%s uid=%s: %s", pid, uid, exc.why)
            raise GRPCError(Status.PERMISSION_DENIED, "no identity issued") from exc

    def _on_feed(self, entries: list[FeedEntry]) -> None:
        """Runs in whichever thread applied the feed: close streams of inactive principals."""
        ended = {e.spiffe_id: e.status for e in entries if e.status != "active"}
        loop = self._loop
        if not ended or loop is None or loop.is_closed():
            return
        for stream in list(self._streams):
            if stream.spiffe_id in ended:
                stream.reason = f"agent is {ended[stream.spiffe_id]}"
                loop.call_soon_threadsafe(stream.closed.set)

    async def _watch(
        self, open_stream: _OpenStream, evidence: UnixEvidence, until: float | None
    ) -> None:
        """Return when it is time to push again; raise when the stream must end."""
        loop = asyncio.get_running_loop()
        sequence = self._authority.ca.bundle.sequence
        while until is None or loop.time() < until:
            wait = (
                self._check_interval
                if until is None
                else min(self._check_interval, max(0.0, until - loop.time()))
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(open_stream.closed.wait(), wait)
            if open_stream.closed.is_set():
                raise GRPCError(Status.PERMISSION_DENIED, open_stream.reason or "stream closed")
            if not evidence.process.is_alive():
                raise GRPCError(Status.PERMISSION_DENIED, "the attested process is gone")
            if self._authority.ca.bundle.sequence != sequence:
                return  # the bundle changed: push it now

    # -- X.509 -------------------------------------------------------------------------------

    def _x509_response(self, agent: Agent) -> tuple[pb.X509SVIDResponse, float]:
        issued = self._authority.issuer.issue_agent_x509(agent.name, ttl_s=self._svid_ttl_s)
        chain = b"".join(
            c.public_bytes(serialization.Encoding.DER) for c in (issued.cert, *issued.chain)
        )
        assert issued.key is not None
        key = issued.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        svid = pb.X509SVID(
            spiffe_id=agent.spiffe_id,
            x509_svid=chain,
            x509_svid_key=key,
            bundle=self._roots_der(),
        )
        remaining = (issued.cert.not_valid_after_utc - utcnow()).total_seconds()
        return pb.X509SVIDResponse(svids=[svid]), max(1.0, remaining * self._renew_fraction)

    def _roots_der(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.DER)
            for c in self._authority.ca.bundle.x509_authorities
        )

    async def _serve_stream(
        self, stream: Any, next_message: Callable[[Agent], tuple[Any, float | None]]
    ) -> None:
        """Attest the caller, then push ``next_message(agent)`` until the stream must end.
        ``next_message`` returns the message and, optionally, seconds until the next push."""
        await stream.recv_message()
        agent, evidence = await self._attest()
        loop = self._loop = asyncio.get_running_loop()
        open_stream = _OpenStream(agent.spiffe_id)
        self._streams.add(open_stream)
        try:
            while True:
                state = self._authority.status.principal_state(agent.spiffe_id)
                if state is None or state.status != "active":
                    raise GRPCError(Status.PERMISSION_DENIED, "agent is not active")
                message, push_in = await asyncio.to_thread(next_message, agent)
                await stream.send_message(message)
                until = None if push_in is None else loop.time() + push_in
                await self._watch(open_stream, evidence, until)
        finally:
            self._streams.discard(open_stream)

    async def fetch_x509_svid(
        self, stream: Stream[pb.X509SVIDRequest, pb.X509SVIDResponse]
    ) -> None:
        await self._serve_stream(stream, self._x509_response)

    async def fetch_x509_bundles(
        self, stream: Stream[pb.X509BundlesRequest, pb.X509BundlesResponse]
    ) -> None:
        td = f"spiffe://{self._authority.trust_domain}"
        await self._serve_stream(
            stream, lambda _agent: (pb.X509BundlesResponse(bundles={td: self._roots_der()}), None)
        )

    # -- JWT ---------------------------------------------------------------------------------

    async def fetch_jwt_svid(self, stream: Stream[pb.JWTSVIDRequest, pb.JWTSVIDResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        if not request.audience:
            raise GRPCError(Status.INVALID_ARGUMENT, "audience must be specified")
        agent, _ = await self._attest()
        if request.spiffe_id and request.spiffe_id != agent.spiffe_id:
            raise GRPCError(Status.PERMISSION_DENIED, "no identity issued for that SPIFFE ID")
        issued = await asyncio.to_thread(
            self._authority.issuer.issue_agent_jwt, agent.name, list(request.audience)
        )
        await stream.send_message(
            pb.JWTSVIDResponse(svids=[pb.JWTSVID(spiffe_id=agent.spiffe_id, svid=issued.token)])
        )

    async def fetch_jwt_bundles(
        self, stream: Stream[pb.JWTBundlesRequest, pb.JWTBundlesResponse]
    ) -> None:
        td = f"spiffe://{self._authority.trust_domain}"

        def bundles(_agent: Agent) -> tuple[pb.JWTBundlesResponse, None]:
            jwks = json.dumps(self._authority.ca.bundle.to_jwt_jwks()).encode()
            return pb.JWTBundlesResponse(bundles={td: jwks}), None

        await self._serve_stream(stream, bundles)

    async def validate_jwt_svid(
        self, stream: Stream[pb.ValidateJWTSVIDRequest, pb.ValidateJWTSVIDResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        if not request.audience:
            raise GRPCError(Status.INVALID_ARGUMENT, "audience must be specified")
        if not request.svid:
            raise GRPCError(Status.INVALID_ARGUMENT, "svid must be specified")
        await self._attest()
        try:
            verified = await asyncio.to_thread(
                self._authority.verifier.verify_jwt, request.svid, request.audience
            )
        except CredentialRejected as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, f"invalid JWT-SVID: {exc.code}") from exc
        claims = struct_pb2.Struct()
        claims.update(
            {
                "sub": str(verified.spiffe_id),
                "aud": list(verified.audience),
                "exp": int(verified.expires_at.timestamp()),
                "jti": verified.credential_id,
            }
        )
        await stream.send_message(
            pb.ValidateJWTSVIDResponse(spiffe_id=str(verified.spiffe_id), claims=claims)
        )


async def _check_request(event: RecvRequest) -> None:
    """One place that checks the security header and captures the caller's credentials."""
    if event.metadata.get(HEADER) != "true":
        raise GRPCError(Status.INVALID_ARGUMENT, "security header missing from request")
    transport = getattr(event.peer, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        raise GRPCError(Status.PERMISSION_DENIED, "caller credentials unavailable")
    credentials = peer_credentials(sock)
    handler: Callable[[Any], Awaitable[None]] = event.method_func

    async def with_caller(stream: Any) -> None:
        _caller.set(credentials)
        await handler(stream)

    event.method_func = with_caller


class WorkloadApiServer:
    """The Workload API listening on a Unix socket."""

    def __init__(self, api: WorkloadApi, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._api = api
        self._server: Server | None = None

    @property
    def endpoint(self) -> str:
        """The ``SPIFFE_ENDPOINT_SOCKET`` value for workloads."""
        return f"unix://{self.socket_path}"

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        # grpclib binds a server to the event loop current when it is made: make it here.
        self._server = Server([self._api])
        listen(self._server, RecvRequest, _check_request)
        await self._server.start(path=str(self.socket_path))
        # Any local process may ask; attestation decides what, if anything, it gets.
        os.chmod(self.socket_path, 0o777)  # noqa: S103

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
