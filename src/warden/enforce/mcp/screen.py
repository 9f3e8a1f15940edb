"""What an MCP server sends back, screened before the agent sees any of it.

Each message (a JSON answer, or the data of one SSE event) is parsed; what cannot be read does
not pass. The answer to the agent's request is checked: a tool listing keeps only the tools the
agent may call and whose definitions are as pinned; a result that asks the agent for input (the
stateless revision's embedded requests) passes only if each request is allowed; inspection
hooks see it last. A request the server puts to the agent (the handshake era) is decided like
any request: allowed, the agent may answer it; denied, the server gets Warden's denial as the
answer and the agent never sees the question. Notifications pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from warden import untrusted_json
from warden.enforce.data_checks import answer_verdict, declared_class, mcp_records
from warden.enforce.exchange import RecordFailed, refusal
from warden.enforce.mcp import messages
from warden.enforce.mcp.calls import Exchange, off_loop, on_agents_session
from warden.enforce.mcp.messages import WARDEN_DENIED, McpRefused, Message, error_body
from warden.enforce.mcp.pins import ToolPins
from warden.enforce.mcp.sessions import McpSessions
from warden.enforce.mcp.sse import encode
from warden.policy.model import Decision, DecisionRequest

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

log = logging.getLogger("warden.gateway.mcp")


class Screen:
    def __init__(
        self,
        gateway: Gateway,
        sessions: McpSessions,
        pins: ToolPins,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self.pins = pins
        self._spawn = spawn

    async def json(self, exchange: Exchange, decision: Decision, body: bytes) -> bytes | None:
        """The answer to pass for a JSON body (None: it cannot be read, so nothing passes)."""
        try:
            document = untrusted_json.loads(body)
        except ValueError:
            return None
        return await self.message(exchange, decision, document, body)

    async def event(
        self, exchange: Exchange, decision: Decision, data: str, event_id: str | None
    ) -> bytes | None:
        """The event to pass for an SSE event's data (None: nothing)."""
        try:
            document = untrusted_json.loads(data)
        except ValueError:
            log.warning("decision %s: a non-JSON event dropped", decision.decision_id)
            return None
        screened = await self.message(exchange, decision, document, data.encode())
        return None if screened is None else encode(screened.decode(), event_id=event_id)

    async def message(
        self, exchange: Exchange, decision: Decision, document: Any, raw: bytes
    ) -> bytes | None:
        """What the agent gets for one message from the server (None: nothing)."""
        try:
            message = messages.from_document(document)
        except McpRefused:
            log.warning("decision %s: a malformed message dropped", decision.decision_id)
            return None
        if message.kind == "request":
            return await self._server_request(exchange, message, raw)
        if message.kind == "notification":
            return raw
        if message.id != exchange.message_id:
            # Only the answer to this request is screened as such; a response to another (a
            # resumed stream's) would pass unscreened, so it does not pass.
            log.warning("decision %s: a response to another request dropped", decision.decision_id)
            return None
        result = message.body.get("result")
        if isinstance(result, dict):
            changed = await self._result(exchange, result)
            if isinstance(changed, bytes):
                return changed  # refused: an error in place of the result
            if changed is not result:
                raw = json.dumps(
                    {**message.body, "result": changed}, separators=(",", ":")
                ).encode()
                result = changed
        blocked = self.gateway.inspect(decision, exchange.route, raw)
        if blocked:
            self.gateway.note_blocked(exchange.incoming, exchange.route, decision, 200, blocked)
            return _denied(message.id, decision, blocked)
        if isinstance(result, dict) and exchange.method in DATA_METHODS:
            # What the agent gets, classified and counted last (nothing else stops it now).
            refused = await answer_verdict(
                self.gateway,
                exchange.incoming,
                exchange.route,
                decision,
                mcp_records(result),
                _declared(exchange),
            )
            if refused is not None:
                self.gateway.note_blocked(exchange.incoming, exchange.route, decision, 200, refused)
                return _denied(message.id, decision, refused)
        return raw

    async def _result(self, exchange: Exchange, result: dict[str, Any]) -> dict[str, Any] | bytes:
        if exchange.method == "tools/list" and isinstance(result.get("tools"), list):
            return await self._filter_tools(exchange, result)
        requests = result.get("inputRequests")
        if result.get("resultType") == "input_required" and isinstance(requests, dict):
            for key, embedded in requests.items():
                method = embedded.get("method") if isinstance(embedded, dict) else None
                decision = await self._decide_for_server(exchange, str(method))
                if not decision.allowed:
                    reason = decision.reasons[0].policy
                    return _denied(exchange.message_id, decision, reason, input_request=str(key))
        return result

    async def _filter_tools(self, exchange: Exchange, result: dict[str, Any]) -> dict[str, Any]:
        """Only the tools this agent may call, and none whose definition changed."""
        route, incoming = exchange.route, exchange.incoming
        tools = [
            t
            for t in result["tools"]
            if isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and 0 < len(t["name"]) <= messages.MAX_METHOD_LENGTH
        ]
        held = await off_loop(self.pins.observe_all, route.upstream_id, tools)
        kept = []
        for tool in tools:
            if tool["name"] in held:
                continue
            target = messages.tool_target(route, tool["name"])
            request = DecisionRequest(
                subject_type="Agent",
                subject_id=incoming.subject,
                action=target.action,
                resource=target.resource,
                context=self.gateway.context(incoming, route, tool=target.tool, args={}),
            )
            if self.gateway.engine.decide(request).allowed:
                kept.append(tool)
        return {**result, "tools": kept}

    async def _server_request(
        self, exchange: Exchange, message: Message, raw: bytes
    ) -> bytes | None:
        decision = await self._decide_for_server(exchange, message.method)
        session_id = exchange.session_id
        if decision.allowed and session_id is not None and message.id is not None:
            await off_loop(self.sessions.expect_answer, session_id, message.id)
            return raw
        if session_id is not None:  # the server is told, so it does not wait for the agent
            body = error_body(
                message.id,
                WARDEN_DENIED,
                "denied by Warden",
                decision_id=decision.decision_id,
                reason=decision.reasons[0].policy,
            )
            self._spawn(on_agents_session(self.gateway, exchange, "POST", body, decision))
        return None

    async def _decide_for_server(self, exchange: Exchange, method: str) -> Decision:
        """Decide and record a request the server puts to the agent."""
        incoming, route = exchange.incoming, exchange.route
        request = DecisionRequest(
            subject_type="Agent",
            subject_id=incoming.subject,
            action=f"mcp:{method}"[:128],
            resource=route.resource,
            context=self.gateway.context(incoming, route, args={}),
        )
        decision = self.gateway.engine.decide(request)
        try:
            await self.gateway.record(decision, request)
        except RecordFailed:
            return refusal("record_failed", "the decision could not be recorded")
        return decision


DATA_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})


def _declared(exchange: Exchange) -> str:
    """The data class of what was decided on (the tool's, the resource's)."""
    if exchange.request is None:
        return declared_class(exchange.route)
    return declared_class(exchange.route, exchange.request.resource.properties)


def _denied(message_id: str | int | None, decision: Decision, reason: str, **data: Any) -> bytes:
    return error_body(
        message_id,
        WARDEN_DENIED,
        f"denied by Warden: {reason}",
        decision_id=decision.decision_id,
        reason=reason,
        **data,
    )
