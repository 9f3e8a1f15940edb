"""MCP's JSON-RPC 2.0 messages as the gateway reads them: one message per POST (batches are
refused), the request metadata headers of the stateless revision checked against the body, and
what the policy is told about each method.

Both eras of the Streamable HTTP transport are understood: the handshake era (``initialize``,
``Mcp-Session-Id``, server requests on SSE streams; revisions 2025-03-26 to 2025-11-25) and the
stateless revision 2026-07-28 (``server/discover``, per-request ``_meta``, ``Mcp-Method`` and
``Mcp-Name`` headers, input requests embedded in results).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from warden import untrusted_json
from warden.enforce.routes import Route
from warden.errors import UntrustedInputError
from warden.policy.model import Resource

# JSON-RPC and MCP error codes the gateway answers with.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
HEADER_MISMATCH = -32020
# Warden's own refusals (a decision, a bound, a session that is not yours): outside the
# ranges JSON-RPC and MCP reserve, so no client mistakes it for a protocol error.
WARDEN_DENIED = -31001

STATELESS_REVISIONS = frozenset({"2026-07-28"})
META_VERSION = "io.modelcontextprotocol/protocolVersion"
MAX_METHOD_LENGTH = 128
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
# Methods whose target is named by ``params.name`` or ``params.uri`` (and the Mcp-Name header).
NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
RESOURCE_METHODS = ("resources/read", "resources/subscribe", "resources/unsubscribe")
# Requests a server may put to the agent (sampling, elicitation, roots).
SERVER_REQUESTS = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})


class McpRefused(UntrustedInputError):
    """A message the gateway will not pass: answered with ``status`` and a JSON-RPC error."""

    code = "mcp_refused"
    public_message = "bad request"

    def __init__(self, status: int, reason: str, rpc_code: int, message: str) -> None:
        super().__init__(message, code=reason)
        self.status, self.reason, self.rpc_code = status, reason, rpc_code


@dataclass(frozen=True)
class Message:
    """One JSON-RPC message. ``kind``: request (method + id), notification (method, no id) or
    response (id + result or error)."""

    kind: Literal["request", "notification", "response"]
    id: str | int | None
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


def parse(data: bytes) -> Message:
    """The one message a client POSTed; :class:`McpRefused` says what is wrong with it."""
    try:
        document = untrusted_json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise McpRefused(400, "mcp_parse_error", PARSE_ERROR, "the body is not JSON") from exc
    if isinstance(document, list):
        raise McpRefused(
            400, "mcp_batch_refused", INVALID_REQUEST, "JSON-RPC batches are not accepted"
        )
    return from_document(document)


def from_document(document: Any) -> Message:
    """A message from its decoded JSON (a client's POST, or an event a server sent)."""
    if not isinstance(document, dict) or document.get("jsonrpc") != "2.0":
        raise _invalid("a JSON-RPC 2.0 object is expected")
    has_id = "id" in document
    message_id = document.get("id")
    if has_id and (isinstance(message_id, bool) or not isinstance(message_id, (str, int))):
        raise _invalid("id is a string or an integer")
    if "method" not in document:
        if not has_id or ("result" in document) == ("error" in document):
            raise _invalid("a response has an id and one of result or error")
        return Message("response", message_id, "", {}, document)
    method = document["method"]
    if (
        not isinstance(method, str)
        or len(method) > MAX_METHOD_LENGTH
        or not _METHOD.fullmatch(method)
    ):
        raise _invalid("method is a short name")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise _invalid("params is an object")
    kind: Literal["request", "notification"] = "request" if has_id else "notification"
    return Message(kind, message_id, method, params, document)


def _invalid(message: str) -> McpRefused:
    return McpRefused(400, "mcp_invalid_request", INVALID_REQUEST, message)


def check_headers(message: Message, header: Callable[[bytes], str | None]) -> str | None:
    """Check the request metadata headers against the body; returns the protocol revision
    the client declared (None: the handshake era without the header).

    In the stateless revision the headers are required and must say what the body says
    (``Mcp-Method``, ``Mcp-Name``, and ``MCP-Protocol-Version`` against ``_meta``): a proxy
    that routed on one and served the other would decide one request and serve another. In
    the handshake era, headers that are present must still agree.
    """
    version = header(b"mcp-protocol-version")
    stateless = version in STATELESS_REVISIONS
    if message.kind == "response":
        return version
    method = header(b"mcp-method")
    if method is None and stateless:
        raise _mismatch("Mcp-Method is required")
    if method is not None and method != message.method:
        raise _mismatch("Mcp-Method does not match the body")
    source = NAMED.get(message.method)
    if source is not None:
        name = header(b"mcp-name")
        target = message.params.get(source)
        if name is None and stateless:
            raise _mismatch("Mcp-Name is required")
        if name is not None and _decoded(name) != target:
            raise _mismatch("Mcp-Name does not match the body")
    meta = message.params.get("_meta")
    declared = meta.get(META_VERSION) if isinstance(meta, dict) else None
    if stateless and declared != version:
        raise _mismatch("MCP-Protocol-Version does not match _meta")
    return version


def _decoded(value: str) -> str | None:
    """A header value in MCP's Base64 sentinel form (``=?base64?...?=``) decoded."""
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        try:
            return base64.b64decode(value[9:-2], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return value


def _mismatch(message: str) -> McpRefused:
    return McpRefused(400, "mcp_header_mismatch", HEADER_MISMATCH, message)


@dataclass(frozen=True)
class Target:
    """What a message is decided on: the action, the resource, and ``tool`` and ``args``
    for the context."""

    action: str
    resource: Resource
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)


def target(route: Route, method: str, params: dict[str, Any]) -> Target:
    """What the policy is told about ``method`` with ``params`` on ``route``: a tool call is
    decided on the tool (the route's properties, then the tool's) with its arguments; a prompt
    on the prompt; a resource on the first resource rule its URI matches; anything else on the
    server itself."""
    action = f"mcp:{method}"
    mcp = route.mcp
    assert mcp is not None  # only MCP routes reach here
    if method in ("tools/call", "prompts/get"):
        name = params.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_METHOD_LENGTH:
            raise _invalid(f"{method} needs params.name")
        arguments = params.get("arguments", {})
        if not isinstance(arguments, dict):
            raise _invalid("params.arguments is an object")
        kind, named = ("tools", mcp.tools) if method == "tools/call" else ("prompts", mcp.prompts)
        properties = {**route.properties, **named.get(name, {})}
        resource = Resource("Tool", f"{route.resource_id}/{kind}/{name}", properties)
        return Target(action, resource, name, arguments)
    if method in RESOURCE_METHODS:
        uri = params.get("uri")
        if not isinstance(uri, str) or not uri or len(uri) > 2048:
            raise _invalid(f"{method} needs params.uri")
        for rule in mcp.resources:
            if uri.startswith(rule.prefix):
                properties = {**route.properties, **rule.properties}
                return Target(action, Resource(rule.type, uri, properties), "", {"uri": uri})
        return Target(action, Resource("Dataset", uri, route.properties), "", {"uri": uri})
    return Target(action, route.resource)


def tool_target(route: Route, name: str) -> Target:
    """The target of a call to tool ``name`` with no arguments (for filtering a listing)."""
    return target(route, "tools/call", {"name": name})


def error_body(message_id: str | int | None, code: int, text: str, **data: Any) -> bytes:
    """A JSON-RPC error response."""
    error: dict[str, Any] = {"code": code, "message": text}
    if data:
        error["data"] = data
    return json.dumps(
        {"jsonrpc": "2.0", "id": message_id, "error": error}, separators=(",", ":")
    ).encode()
