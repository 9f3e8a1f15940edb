"""MCP through the gateway: every JSON-RPC message an agent sends is decided, recorded and
only then forwarded; every message that comes back is screened before the agent sees it.

Per POST (or GET stream, or DELETE of a session), in the gateway's order: authenticate (done
by the gateway) -> describe (parse the one message, check its headers, the session's owner,
the tool's pin) -> decide -> reserve -> record -> forward (mTLS, signed decision header) ->
screen what comes back (JSON or each SSE event: tool listings filtered and pinned, requests the
server puts to the agent decided, inspection hooks) -> answer. Refusals are JSON-RPC errors
carrying the decision id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp
import yarl

from warden.enforce.exchange import (
    RECORD_FAILED,
    Incoming,
    RecordFailed,
    Refused,
    anonymous_request,
    answer,
    refusal,
    relayed_headers,
)
from warden.enforce.mcp import messages
from warden.enforce.mcp.calls import Exchange, off_loop, on_agents_session
from warden.enforce.mcp.messages import (
    INVALID_REQUEST,
    WARDEN_DENIED,
    McpRefused,
    Message,
    Target,
    error_body,
)
from warden.enforce.mcp.pins import ToolPins
from warden.enforce.mcp.screen import Screen
from warden.enforce.mcp.sessions import McpSessions
from warden.enforce.mcp.sse import EventReader, EventTooLarge, encode
from warden.enforce.mcp.streams import OpenStream, StreamWatch
from warden.enforce.parking import park
from warden.enforce.risk_feed import observe
from warden.enforce.routes import Route
from warden.enforce.upstream_client import UpstreamIdentityMismatch, read_bounded
from warden.errors import WardenError
from warden.policy.model import Decision, DecisionRequest

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

log = logging.getLogger("warden.gateway.mcp")
SESSION = b"mcp-session-id"
STREAMING_METHODS = frozenset({"subscriptions/listen"})


class McpProxy:
    """The gateway's MCP side; ``gateway`` supplies the engine, recorder and upstreams."""

    def __init__(
        self, gateway: Gateway, sessions: McpSessions, pins: ToolPins, max_event_bytes: int
    ) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self.pins = pins
        self.max_event_bytes = max_event_bytes
        self.streams = StreamWatch(
            lambda: gateway.verifier or gateway.authority.verifier, on_closed=self._stream_closed
        )
        self._open: dict[OpenStream, Exchange] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.screen = Screen(gateway, sessions, pins, self._spawn)

    async def serve(self, send: Any, route: Route, incoming: Incoming, receive: Any) -> None:
        gateway = self.gateway
        exchange = Exchange(route, incoming, receive)
        request: DecisionRequest | None = None
        try:
            request = await self._describe(exchange)  # 2 describe
            exchange.request = request
            decision = gateway.engine.decide(request)  # 3 decide
            decision = gateway.reserve(decision, incoming.subject, route)  # 4 reserve
            try:
                await gateway.record(decision, request)  # 5 record
                await park(gateway, decision, request)  # an approval it needs: wait for it
                if decision.allowed:
                    await self._forward(send, exchange, decision)  # 6-8 forward, screen, answer
                else:
                    await self._answer_error(send, exchange, 403, decision)
            finally:
                if decision.allowed:
                    gateway.release(incoming.subject)
            observe(gateway, incoming, request, decision)  # 9 learn from it, score the agent
        except McpRefused as exc:
            refused = Refused(exc.status, exc.reason, exc.message)
            await self._refuse(send, exchange, request, refused, exc.rpc_code)
        except Refused as refused:
            await self._refuse(send, exchange, request, refused, WARDEN_DENIED)
        except RecordFailed:
            await self._answer_error(send, exchange, 503, refusal("record_failed", ""))

    # -- describe ------------------------------------------------------------------------------

    async def _describe(self, exchange: Exchange) -> DecisionRequest:
        incoming, route = exchange.incoming, exchange.route
        if incoming.query:
            raise McpRefused(400, "ambiguous_request", INVALID_REQUEST, "no query on MCP")
        exchange.session_id = incoming.header(SESSION)
        if incoming.method == "POST":
            found = self._target_of_post(exchange)
        elif incoming.method in ("GET", "DELETE"):
            if exchange.session_id is None:  # the stateless revision has neither
                raise Refused(405, "mcp_method_not_allowed", "GET and DELETE need a session")
            verb = "stream/open" if incoming.method == "GET" else "session/close"
            found = Target(f"mcp:{verb}", route.resource)
        else:
            raise Refused(405, "mcp_method_not_allowed", "an MCP endpoint takes POST")
        if exchange.session_id is not None:
            await self._check_session_owner(exchange)
        message = exchange.message
        if message is not None and message.kind == "response":
            await self._check_answer(exchange, message)
        if found.action == "mcp:tools/call" and self.pins.is_held(route.upstream_id, found.tool):
            raise Refused(403, "mcp_tool_changed", "the tool's definition changed: held")
        return DecisionRequest(
            subject_type="Agent",
            subject_id=incoming.subject,
            action=found.action,
            resource=found.resource,
            context=self.gateway.context(
                incoming, route, tool=found.tool, args=found.args, outbound=found.args or None
            ),
        )

    def _target_of_post(self, exchange: Exchange) -> Target:
        message = messages.parse(exchange.incoming.body)
        exchange.message = message
        messages.check_headers(message, exchange.incoming.header)
        if message.kind == "response":
            return Target("mcp:respond", exchange.route.resource)
        if message.method == "initialize" and exchange.session_id is not None:
            raise McpRefused(400, "mcp_invalid_request", INVALID_REQUEST, "initialize opens one")
        return messages.target(exchange.route, message.method, message.params)

    async def _check_answer(self, exchange: Exchange, message: Message) -> None:
        """An agent answers only what the server asked it, once, on that session."""
        session_id = exchange.session_id
        if session_id is None or not await off_loop(
            self.sessions.take_answer, session_id, message.id
        ):
            raise Refused(403, "mcp_unsolicited_response", "no such request to answer")

    async def _check_session_owner(self, exchange: Exchange) -> None:
        session_id = exchange.session_id
        assert session_id is not None
        owner = self.sessions.cached_owner(session_id) or await off_loop(
            self.sessions.owner, session_id
        )
        if owner is None:
            raise Refused(404, "mcp_session_unknown", "no such session")
        if owner[0] != exchange.incoming.subject:
            raise Refused(403, "mcp_session_not_yours", "the session belongs to another agent")
        if owner[1] != exchange.route.upstream_id:
            raise Refused(403, "mcp_session_not_yours", "the session is on another server")

    # -- forward -------------------------------------------------------------------------------

    async def _forward(self, send: Any, exchange: Exchange, decision: Decision) -> None:
        gateway, route, incoming = self.gateway, exchange.route, exchange.incoming
        url = yarl.URL(route.upstream, encoded=True)
        headers = gateway.upstream_headers(
            incoming,
            route,
            decision,
            method=incoming.method,
            path=url.raw_path_qs,
            body=incoming.body,
            inspecting=True,
        )
        streaming = incoming.method == "GET" or exchange.method in STREAMING_METHODS
        read_timeout = None if streaming else gateway.authority.settings.gateway_upstream_timeout_s
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=read_timeout)
        try:
            async with gateway.upstreams.session(route.upstream_id).request(
                incoming.method,
                url,
                headers=headers,
                data=incoming.body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as upstream:
                await self._relay(send, exchange, upstream, decision)
        except UpstreamIdentityMismatch as exc:
            log.error("decision %s: %s", decision.decision_id, exc.message)
            await self._answer_error(send, exchange, 502, decision, "upstream_identity_mismatch")
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("decision %s: upstream failed: %s", decision.decision_id, exc)
            await self._answer_error(send, exchange, 502, decision, "upstream_unavailable")

    async def _relay(
        self, send: Any, exchange: Exchange, upstream: aiohttp.ClientResponse, decision: Decision
    ) -> None:
        if upstream.headers.get("content-encoding", "identity").lower() != "identity":
            await self._answer_error(send, exchange, 502, decision, "uninspectable_response")
            return
        await self._follow_session(exchange, upstream)
        headers = relayed_headers(upstream.headers)
        headers.append((b"x-warden-decision-id", decision.decision_id.encode()))
        kind = upstream.headers.get("content-type", "").lower()
        if upstream.status == 200 and kind.startswith("text/event-stream"):
            await self._relay_events(send, exchange, upstream, decision, headers)
            return
        limit = self.gateway.authority.settings.gateway_max_response_bytes
        body = await read_bounded(upstream, limit)
        if body is None:
            await self._answer_error(send, exchange, 502, decision, "response_too_large")
            return
        if exchange.asks and upstream.status == 200 and kind.startswith("application/json"):
            screened = await self.screen.json(exchange, decision, body)
            if screened is None:
                await self._answer_error(send, exchange, 502, decision, "uninspectable_response")
                return
            body = screened
        elif body and (blocked := self.gateway.inspect(decision, exchange.route, body)):
            await self._answer_error(send, exchange, 403, decision, blocked)
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _follow_session(self, exchange: Exchange, upstream: aiohttp.ClientResponse) -> None:
        """Bind a session the server opens to the agent; forget one the agent closed."""
        issued = upstream.headers.get("mcp-session-id")
        if exchange.method == "initialize" and upstream.status == 200 and issued:
            await off_loop(
                self.sessions.bind, issued, exchange.incoming.subject, exchange.route.upstream_id
            )
        elif exchange.incoming.method == "DELETE" and upstream.status < 300:
            await off_loop(self.sessions.end, exchange.session_id)

    async def _relay_events(
        self,
        send: Any,
        exchange: Exchange,
        upstream: aiohttp.ClientResponse,
        decision: Decision,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Each event is read whole (up to the bound), screened, then passed on. The stream
        ends when the server ends it, the agent goes away, or the agent is contained."""
        credential = exchange.incoming.credential
        assert credential is not None
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        exchange.started = True
        stream = self.streams.open(credential, exchange.session_id, upstream.close)
        exchange.stream = stream
        self._open[stream] = exchange
        watcher = asyncio.create_task(_close_when_gone(exchange.receive, upstream))
        reader = EventReader(self.max_event_bytes)
        try:
            async for chunk in upstream.content.iter_any():
                for event in reader.feed(chunk):
                    out = (
                        event.raw
                        if event.data is None
                        else await self.screen.event(exchange, decision, event.data, event.id)
                    )
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
        except EventTooLarge:
            log.warning(
                "decision %s: an event over the bound ends the stream", decision.decision_id
            )
            tail = error_body(
                exchange.message_id,
                WARDEN_DENIED,
                "event too large",
                decision_id=decision.decision_id,
                reason="event_too_large",
            )
            await send(
                {"type": "http.response.body", "body": encode(tail.decode()), "more_body": True}
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            if stream.reason is None:
                log.info("decision %s: stream ended: %s", decision.decision_id, exc)
        finally:
            watcher.cancel()
            self.streams.done(stream)
            self._open.pop(stream, None)
            upstream.close()
            await send({"type": "http.response.body", "body": b""})

    # -- answers and upkeep --------------------------------------------------------------------

    async def _refuse(
        self,
        send: Any,
        exchange: Exchange,
        request: DecisionRequest | None,
        refused: Refused,
        rpc_code: int,
    ) -> None:
        decision = refusal(refused.policy, refused.message)
        try:
            await self.gateway.record(decision, request or anonymous_request(exchange.incoming))
        except RecordFailed:
            refused, rpc_code = RECORD_FAILED, WARDEN_DENIED
        await self.answer_refused(send, exchange.message_id, decision, refused, rpc_code)
        if request is not None:
            observe(self.gateway, exchange.incoming, request, decision)

    async def answer_refused(
        self,
        send: Any,
        message_id: str | int | None,
        decision: Decision,
        refused: Refused,
        rpc_code: int = WARDEN_DENIED,
    ) -> None:
        """A JSON-RPC error for a refusal; a 2xx refusal (a parked request) answers 403, as
        MCP clients read a 2xx as success."""
        reason = refused.policy
        body = error_body(
            message_id,
            rpc_code,
            f"denied by Warden: {reason}",
            decision_id=decision.decision_id,
            reason=reason,
        )
        await answer(send, refused.status if refused.status >= 400 else 403, body, refused.headers)

    async def _answer_error(
        self, send: Any, exchange: Exchange, status: int, decision: Decision, reason: str = ""
    ) -> None:
        reason = reason or decision.reasons[0].policy
        if exchange.started:  # mid-stream: the error is the last event
            body = error_body(
                exchange.message_id,
                WARDEN_DENIED,
                f"denied by Warden: {reason}",
                decision_id=decision.decision_id,
                reason=reason,
            )
            await send(
                {"type": "http.response.body", "body": encode(body.decode()), "more_body": True}
            )
            return
        await self.answer_refused(send, exchange.message_id, decision, Refused(status, reason, ""))

    def _stream_closed(self, stream: OpenStream) -> None:
        """The agent was contained: end its session on the server too, and say so on record."""
        exchange = self._open.pop(stream, None)
        if exchange is None:
            return
        self._spawn(self._end_session(exchange, stream.reason or "contained"))

    async def _end_session(self, exchange: Exchange, reason: str) -> None:
        decision = refusal("mcp_stream_closed", reason)
        request = DecisionRequest(
            subject_type="Agent",
            subject_id=exchange.incoming.subject,
            action="mcp:session/close",
            resource=exchange.route.resource,
            context=self.gateway.context(exchange.incoming, exchange.route, args={}),
        )
        with contextlib.suppress(RecordFailed):
            await self.gateway.record(decision, request)
        session_id = exchange.session_id
        if session_id is None:
            return
        await on_agents_session(self.gateway, exchange, "DELETE", b"", decision)
        with contextlib.suppress(WardenError):
            await asyncio.to_thread(self.sessions.end, session_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _close_when_gone(receive: Any, upstream: aiohttp.ClientResponse) -> None:
    """The agent hung up: stop reading from the server (which then sees its stream end)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            upstream.close()
            return
