"""Forwarding an allowed request and relaying the answer (the gateway's steps 6-8).

The upstream is called over mTLS with the signed decision header. Its answer streams straight
through when nothing needs to read it; otherwise it is read whole (up to the response limit),
passed to the inspection hooks, rewritten by the decision's obligations, classified and counted
by DLP, and only then sent: a refusal at any of those steps replaces the whole answer, so no
byte of it leaves. Sensitive data in a form that cannot be inspected does not pass.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import yarl

from warden.enforce.data_checks import SENSITIVE, answer_verdict, declared_class
from warden.enforce.exchange import Incoming, answer_deny, relayed_headers
from warden.enforce.obligations import apply_to_body, needs_body
from warden.enforce.routes import Route
from warden.enforce.upstream_client import UpstreamIdentityMismatch, read_bounded
from warden.policy.model import Decision

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

log = logging.getLogger("warden.gateway")
SMALL_RESPONSE = 65536


async def forward(
    gateway: Gateway, send: Any, route: Route, incoming: Incoming, decision: Decision
) -> None:
    """Send the allowed request to the route's upstream and relay its answer."""
    path = incoming.raw_path.decode("ascii") + (
        "?" + incoming.query.decode("latin-1") if incoming.query else ""
    )
    headers = gateway.upstream_headers(
        incoming,
        route,
        decision,
        method=incoming.method,
        path=path,
        body=incoming.body,
        inspecting=needs_body(decision.obligations) or bool(gateway.inspectors),
    )
    session = gateway.upstreams.session(route.upstream_id)
    try:
        async with session.request(
            incoming.method,
            yarl.URL(route.upstream + path, encoded=True),  # already checked: no requoting
            headers=headers,
            data=incoming.body or None,
            allow_redirects=False,
        ) as upstream:
            await _relay(gateway, send, upstream, incoming, route, decision)
    except UpstreamIdentityMismatch as exc:
        log.error("decision %s: %s", decision.decision_id, exc.message)
        await _blocked(gateway, send, incoming, route, decision, 502, "upstream_identity_mismatch")
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("decision %s: upstream failed: %s", decision.decision_id, exc)
        await _blocked(gateway, send, incoming, route, decision, 502, "upstream_unavailable")


async def _relay(
    gateway: Gateway,
    send: Any,
    upstream: aiohttp.ClientResponse,
    incoming: Incoming,
    route: Route,
    decision: Decision,
) -> None:
    headers = relayed_headers(upstream.headers)
    headers.append((b"x-warden-decision-id", decision.decision_id.encode()))
    json_answer = "json" in upstream.headers.get("content-type", "").lower()
    declared = declared_class(route)
    empty = upstream.content_length == 0 or upstream.status in (204, 304)
    if gateway.dlp is not None and not (json_answer or empty) and declared in SENSITIVE:
        # Data declared sensitive in a form DLP cannot read does not pass unread.
        await _blocked(gateway, send, incoming, route, decision, 502, "uninspectable_response")
        return
    reads_answer = gateway.dlp is not None and json_answer
    if not (needs_body(decision.obligations) or gateway.inspectors or reads_answer):
        length = upstream.content_length
        if length is not None and length <= SMALL_RESPONSE:  # one write, no chunk loop
            body = await upstream.read()
            headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {"type": "http.response.start", "status": upstream.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        async for chunk in upstream.content.iter_chunked(65536):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if upstream.headers.get("content-encoding", "identity").lower() != "identity":
        await _blocked(gateway, send, incoming, route, decision, 502, "uninspectable_response")
        return
    limit = gateway.authority.settings.gateway_max_response_bytes
    whole = await read_bounded(upstream, limit)
    if whole is None:
        await _blocked(gateway, send, incoming, route, decision, 502, "response_too_large")
        return
    body = whole
    blocked = gateway.inspect(decision, route, body)
    if blocked:
        await _blocked(gateway, send, incoming, route, decision, 403, blocked)
        return
    if needs_body(decision.obligations):
        try:
            body, done = apply_to_body(decision.obligations, body)
        except ValueError:
            await _blocked(gateway, send, incoming, route, decision, 502, "uninspectable_response")
            return
        headers = [(k, v) for k, v in headers if k != b"content-encoding"]
        if done:
            headers.append((b"x-warden-obligations", ",".join(done).encode()))
    if reads_answer:  # what would leave, after the obligations: classified and counted
        refused = await answer_verdict(gateway, incoming, route, decision, body, declared)
        if refused is not None:
            await _blocked(gateway, send, incoming, route, decision, 403, refused)
            return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _blocked(
    gateway: Gateway,
    send: Any,
    incoming: Incoming,
    route: Route,
    decision: Decision,
    status: int,
    reason: str,
) -> None:
    """An allowed request whose answer does not reach the agent: noted beside its decision
    in the log, and answered with the short deny."""
    gateway.note_blocked(incoming, route, decision, status, reason)
    await answer_deny(send, decision, status, reason=reason)
