"""The enforcement gateway: no agent request reaches a service without identity, decision and
record.

Per request, in this order: authenticate (mTLS X.509-SVID, or a JWT-SVID bearer for this
gateway; identity headers from clients are refused) -> describe (route, resource, args) ->
decide -> reserve (work-order uses, throttles) -> record (durable before anything else) ->
forward (mTLS to the upstream, whose SPIFFE ID is checked; a signed decision header) -> inspect
(obligations, inspection hooks) -> answer. Every failure on the way is a deny with its reason
recorded: Warden fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509

from warden.audit.entries import CREDENTIAL, MASK
from warden.audit.recorder import DecisionRecorder
from warden.enforce.data_checks import region_of, request_document
from warden.enforce.decision_header import AGENT_HEADER, HEADER, DecisionHeaderSigner
from warden.enforce.exchange import (
    CLOSE,
    INTERNAL_ERROR,
    RECORD_FAILED,
    SPOOFABLE,
    Incoming,
    RecordFailed,
    Refused,
    anonymous_request,
    answer_deny,
    forwarded_headers,
    refusal,
)
from warden.enforce.obligations import Throttle, Throttles
from warden.enforce.parking import park
from warden.enforce.relay import forward
from warden.enforce.risk_feed import observe
from warden.enforce.routes import AmbiguousRequest, Route, RouteTable, extract_args
from warden.enforce.upstream_client import UpstreamPool
from warden.errors import WardenError
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import CredentialRejected
from warden.identity.verifier import CredentialVerifier
from warden.metrics import Metrics
from warden.policy.engine import PolicyEngine
from warden.policy.model import Decision, DecisionRequest
from warden.response.engine import ResponseEngine
from warden.risk.engine import RiskEngine
from warden.shared.gate import SharedGate
from warden.trust.dlp import Dlp
from warden.trust.windows import SharedStateUnavailable

if TYPE_CHECKING:
    from warden.enforce.mcp.proxy import McpProxy

log = logging.getLogger("warden.gateway")
# What an inspection hook sees and may do: (decision, route, body) -> replacement deny reason.
InspectionHook = Callable[[Decision, Route, bytes], str | None]


@dataclass
class Gateway:
    """The gateway as an ASGI application."""

    authority: IdentityAuthority
    engine: PolicyEngine
    recorder: DecisionRecorder
    routes: RouteTable
    upstreams: UpstreamPool
    signer: DecisionHeaderSigner
    spiffe_id: str
    verifier: CredentialVerifier | None = None  # default: the authority's own
    inspectors: list[InspectionHook] = field(default_factory=list)
    throttles: Throttle = field(default_factory=Throttles)
    in_flight: dict[str, int] = field(default_factory=dict)
    mcp: McpProxy | None = None  # serves routes declared ``protocol: mcp``
    dlp: Dlp | None = None  # data-loss checks on what goes out and what comes back
    region: str = ""  # where this gateway's agents are, for those without a region label
    risk: RiskEngine | None = None  # learns from every request, scores the next decision
    metrics: Metrics = field(default_factory=lambda: Metrics("gateway"))
    gate: SharedGate | None = None  # Redis: the revocation fence and shared DLP counts
    response: ResponseEngine | None = None  # playbooks: what it sees may contain an agent

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        incoming = await self._read(scope, receive)
        request: DecisionRequest | None = None
        try:
            self._authenticate(scope, incoming)  # 1 authenticate
            await self._shared(incoming)  # the revocation fence, shared counts
            route = self._route(incoming)  # 2 describe: the route, then the request
            if route.mcp is not None and self.mcp is not None:
                await self.mcp.serve(send, route, incoming, receive)  # the same steps, per message
                return
            request = self._describe(route, incoming)
            deciding = time.perf_counter()
            decision = self.engine.decide(request)  # 3 decide
            self.metrics.timed_decide(time.perf_counter() - deciding)
            decision = self.reserve(decision, incoming.subject, route)  # 4 reserve
            try:
                await self.record(decision, request)  # 5 record
                await park(self, decision, request)  # an approval it needs: wait for it
                if decision.allowed:
                    await forward(self, send, route, incoming, decision)  # 6-8 forward, inspect
                else:
                    await answer_deny(send, decision, 403)
            finally:
                if decision.allowed:
                    self.release(incoming.subject)
            observe(self, incoming, request, decision)  # 9 learn from it, score the agent
        except RecordFailed:
            await self._answer_refused(send, incoming, refusal("record_failed", ""), RECORD_FAILED)
        except Refused as refused:
            decision = refusal(refused.policy, refused.message)
            try:
                await self.record(decision, request or anonymous_request(incoming))
            except RecordFailed:
                refused = RECORD_FAILED
            await self._answer_refused(send, incoming, decision, refused)
            if request is not None:
                observe(self, incoming, request, decision)
        except Exception as exc:  # a fault inside Warden: refused and on record, never passed
            await self._fault(send, incoming, request, exc)
        finally:
            self.metrics.timed_request(time.perf_counter() - started)

    # -- the steps -----------------------------------------------------------------------------

    async def _read(self, scope: dict[str, Any], receive: Any) -> Incoming:
        """The request with its body, read up to the limit and no further: a body declared or
        streamed past it is not read on (the connection closes after the 413)."""
        settings = self.authority.settings
        limit = settings.gateway_max_body_bytes
        client = scope.get("client") or ("", 0)
        incoming = Incoming(
            method=scope["method"],
            raw_path=scope.get("raw_path") or scope["path"].encode(),
            query=scope.get("query_string", b""),
            headers=list(scope["headers"]),
            body=b"",
            host=_host(scope),
            client=str(client[0]),
        )
        declared = incoming.header(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            incoming.oversize = True
            return incoming
        body = bytearray()
        try:
            async with asyncio.timeout(settings.gateway_client_timeout_s):
                while True:
                    message = await receive()
                    body += message.get("body", b"")
                    if len(body) > limit:
                        incoming.oversize = True
                        return incoming
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            incoming.timed_out = True
            return incoming
        incoming.body = bytes(body)
        return incoming

    def _authenticate(self, scope: dict[str, Any], incoming: Incoming) -> None:
        settings = self.authority.settings
        if incoming.oversize:
            raise Refused(413, "body_too_large", "the request body is over the limit", CLOSE)
        if incoming.timed_out:
            raise Refused(408, "client_timeout", "the request body did not arrive in time", CLOSE)
        if len(incoming.raw_path) + len(incoming.query) > settings.gateway_max_url_bytes or any(
            len(k) + len(v) > settings.gateway_max_header_bytes for k, v in incoming.headers
        ):
            raise Refused(431, "request_too_large", "the URL or a header is over the limit")
        for name, _ in incoming.headers:
            lowered = name.decode("latin-1").lower()
            if lowered in SPOOFABLE or lowered.startswith("x-warden-"):
                raise Refused(
                    400,
                    "spoofed_identity_header",
                    f"identity headers from clients are refused ({lowered})",
                )
        verifier = self.verifier or self.authority.verifier
        tls = scope.get("extensions", {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or []
        authorization = incoming.header(b"authorization") or ""
        try:
            if chain:
                credential = verifier.verify_x509([_certificate(pem) for pem in chain])
                incoming.authn = "mtls"
            elif authorization.lower().startswith("bearer "):
                credential = verifier.verify_jwt(authorization[7:].strip(), self.spiffe_id)
                incoming.authn = "jwt"
            else:
                raise Refused(401, "no_credential", "present an X.509-SVID or a JWT-SVID")
        except CredentialRejected as exc:
            raise Refused(401, f"credential_{exc.code}", exc.detail) from exc
        except ValueError as exc:
            raise Refused(401, "credential_malformed", str(exc)) from exc
        except WardenError as exc:  # status view stale, store down: fail closed
            raise Refused(503, exc.code, exc.message) from exc
        incoming.subject = str(credential.spiffe_id)
        incoming.credential = credential
        if credential.spiffe_id.kind != "agent":
            raise Refused(403, "not_an_agent", "only agents call through the gateway")

    async def _shared(self, incoming: Incoming) -> None:
        """The revocation fence and the agent's DLP counts, in one asynchronous round trip to
        Redis (when there is one): a credential revoked a moment ago is refused here, before
        the gateway's feed has the change."""
        if self.gate is None or incoming.credential is None:
            return
        fenced = await self.gate.fenced(incoming.subject, incoming.credential.credential_id)
        if fenced:
            raise Refused(401, f"credential_{fenced}", "revoked (the fence saw it first)")

    def _route(self, incoming: Incoming) -> Route:
        try:
            found = self.routes.find(incoming.host, incoming.raw_path)
        except AmbiguousRequest as exc:
            raise Refused(400, "ambiguous_request", exc.message) from exc
        if found is None:
            raise Refused(403, "unknown_route", "no route serves this path")
        return found[0]

    def _describe(self, route: Route, incoming: Incoming) -> DecisionRequest:
        try:
            args = extract_args(
                route,
                incoming.query,
                incoming.body,
                incoming.header(b"content-type") or "",
                incoming.body_json,  # parsed once: outbound DLP reads the same document
            )
        except AmbiguousRequest as exc:
            raise Refused(400, "ambiguous_request", exc.message) from exc
        return DecisionRequest(
            subject_type="Agent",
            subject_id=incoming.subject,
            action=f"http:{incoming.method.upper()}",
            resource=route.resource,
            context=self.context(incoming, route, args=args, outbound=request_document(incoming)),
        )

    def context(
        self,
        incoming: Incoming,
        route: Route,
        *,
        tool: str = "",
        args: dict[str, Any],
        outbound: Any = None,
    ) -> dict[str, Any]:
        """The decision context the caller's request gives (Warden adds the rest).
        ``outbound``: what the request sends (its body, a tool's arguments)."""
        context: dict[str, Any] = {
            "authn": incoming.authn,
            "source_ip": incoming.client,
            "args": args,
            "destination_region": region_of(self, incoming.subject),
            "route": route.name,
        }
        if tool:
            context["tool"] = tool
        if self.dlp is not None:
            context["bulk"] = self.dlp.bulk_request(args, tool)
            context["outbound"] = self.dlp.outbound(outbound)
        # For the decision log only (policies never see them): which credential, what to mask.
        if incoming.credential is not None:
            context[CREDENTIAL] = incoming.credential.credential_id
        if route.mask:
            context[MASK] = route.mask
        return context

    def reserve(self, decision: Decision, subject: str, route: Route) -> Decision:
        """Take what an allow consumes: a throttle token, a slot among the agent's requests in
        flight, a work-order use (last). A refusal raises :class:`Refused`."""
        if not decision.allowed:
            return decision
        for obligation in decision.obligations:
            if obligation.startswith(("throttle:", "throttle-agent:")):
                # A playbook's cap on the agent counts across all its routes.
                scope = "*" if obligation.startswith("throttle-agent:") else route.name
                try:
                    wait = self.throttles.take(subject, scope, obligation)
                except SharedStateUnavailable as exc:
                    raise Refused(503, "shared_state_unavailable", str(exc)[:200]) from exc
                if wait > 0:
                    raise Refused(
                        429,
                        "throttled",
                        f"{obligation} exceeded",
                        {"retry-after": str(max(1, round(wait)))},
                    )
        in_flight = self.in_flight.get(subject, 0)
        if in_flight >= self.authority.settings.gateway_max_concurrent_per_agent:
            raise Refused(429, "too_many_concurrent", "too many requests in flight")
        decision = self.engine.reserve(decision)  # the work-order use, taken last
        if decision.allowed:  # the slot is taken here, with no await since the check
            self.in_flight[subject] = in_flight + 1
        return decision

    def release(self, subject: str) -> None:
        left = self.in_flight.get(subject, 1) - 1
        if left > 0:
            self.in_flight[subject] = left
        else:
            self.in_flight.pop(subject, None)

    async def record(self, decision: Decision, request: DecisionRequest) -> None:
        """Make the decision durable; :class:`RecordFailed` when it cannot be (then nothing is
        forwarded, and the caller is answered 503)."""
        self.metrics.decided(decision.decision)
        try:
            await self.recorder.record_async(decision, request, enforcement_point=self.spiffe_id)
        except WardenError as exc:
            log.error("%s", exc.message)
            raise RecordFailed() from exc
        if self.response is not None:  # on record: playbooks may act before it is answered
            try:
                self.response.on_decision(request, decision)
            except Exception:
                log.exception("response: decision %s not shown to playbooks", decision.decision_id)

    def upstream_headers(
        self,
        incoming: Incoming,
        route: Route,
        decision: Decision,
        *,
        method: str,
        path: str,
        body: bytes,
        inspecting: bool,
    ) -> dict[str, str]:
        """The headers an upstream gets: the agent's (filtered), the route's credential, who
        the agent is, and the signed decision for exactly this method, path and body."""
        headers = forwarded_headers(incoming.headers)
        if route.credential_header and route.credential_value:
            # In lower case, so it replaces a header of that name sent by the agent.
            headers[route.credential_header.lower()] = route.credential_value
        if inspecting:
            headers["accept-encoding"] = "identity"  # what is inspected must be readable
        headers[AGENT_HEADER] = incoming.subject
        headers[HEADER] = self.signer.sign(
            upstream_id=route.upstream_id,
            agent_id=incoming.subject,
            decision_id=decision.decision_id,
            method=method,
            path=path,
            body=body,
        )
        return headers

    def note_blocked(
        self, incoming: Incoming, route: Route, decision: Decision, status: int, reason: str
    ) -> None:
        """Put on record that an allowed request's answer was refused, and why."""
        self.recorder.note(
            "answer_blocked",
            {
                "decision_id": decision.decision_id,
                "agent": incoming.subject,
                "route": route.name,
                "status": status,
                "reason": reason,
            },
            subject=incoming.subject,
        )

    def inspect(self, decision: Decision, route: Route, body: bytes) -> str | None:
        """The first inspection hook's reason to block ``body``, or None."""
        for inspect in self.inspectors:
            blocked = inspect(decision, route, body)
            if blocked:
                return blocked
        return None

    async def _answer_refused(
        self, send: Any, incoming: Incoming, decision: Decision, refused: Refused
    ) -> None:
        """An MCP client is answered in JSON-RPC, anyone else with the short JSON deny."""
        if self.mcp is not None and self._is_mcp(incoming):
            await self.mcp.answer_refused(send, None, decision, refused)
        else:
            await answer_deny(send, decision, refused.status, refused.headers)

    async def _fault(
        self, send: Any, incoming: Incoming, request: DecisionRequest | None, exc: Exception
    ) -> None:
        """A request Warden itself failed on: a deny on record, answered 500 if the answer
        has not begun (if it has, the connection just ends)."""
        log.exception("gateway: a request failed inside Warden")
        decision = refusal("internal_error", f"the gateway failed: {type(exc).__name__}")
        refused = INTERNAL_ERROR
        try:
            await self.record(decision, request or anonymous_request(incoming))
        except RecordFailed:
            refused = RECORD_FAILED
        with contextlib.suppress(Exception):
            await self._answer_refused(send, incoming, decision, refused)

    def _is_mcp(self, incoming: Incoming) -> bool:
        try:
            found = self.routes.find(incoming.host, incoming.raw_path)
        except AmbiguousRequest:
            return False
        return found is not None and found[0].mcp is not None


@functools.lru_cache(maxsize=4096)
def _certificate(pem: str) -> x509.Certificate:
    """Parsed once per certificate, not once per request on a kept-alive connection."""
    return x509.load_pem_x509_certificate(pem.encode())


def _host(scope: dict[str, Any]) -> str:
    for key, value in scope["headers"]:
        if key == b"host":
            return str(value.decode("latin-1"))
    server = scope.get("server") or ("", 0)
    return str(server[0])
