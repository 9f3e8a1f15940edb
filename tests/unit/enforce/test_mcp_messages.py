"""MCP messages as the gateway reads them: one message, headers that agree with the body, and
what the policy is told. Garbage in gives Warden's own error, never another."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.enforce.mcp import messages
from warden.enforce.mcp.messages import McpRefused, check_headers, parse, target
from warden.enforce.routes import parse_routes

ROUTE = parse_routes(
    {
        "routes": [
            {
                "name": "tools",
                "prefix": "/mcp",
                "protocol": "mcp",
                "upstream": "https://127.0.0.1:9000/mcp",
                "upstream_id": "spiffe://example.org/svc/tools",
                "resource": {
                    "type": "Tool",
                    "id": "tools",
                    "properties": {"domain": "finance", "classification": "internal"},
                },
                "mcp": {
                    "tools": {"export": {"classification": "pii"}},
                    "prompts": {"summarise": {"tags": ["llm"]}},
                    "resources": [
                        {
                            "prefix": "patients://",
                            "type": "Dataset",
                            "properties": {"classification": "phi"},
                        }
                    ],
                },
            }
        ]
    }
).routes[0]


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def headers(**values: str) -> Any:
    table = {k.replace("_", "-").lower().encode(): v for k, v in values.items()}
    return table.get


def refused(data: bytes) -> McpRefused:
    with pytest.raises(McpRefused) as caught:
        parse(data)
    return caught.value


def test_kinds_of_message() -> None:
    request = parse(body({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    assert (request.kind, request.id, request.method, request.params) == (
        "request",
        1,
        "tools/list",
        {},
    )
    note = parse(body({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert note.kind == "notification" and note.id is None
    answer = parse(body({"jsonrpc": "2.0", "id": "a", "result": {}}))
    assert answer.kind == "response"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], "mcp_batch_refused"),
        ({"id": 1, "method": "ping"}, "mcp_invalid_request"),  # no jsonrpc
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": True, "method": "ping"}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": 1, "method": "x" * 200}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call\n"}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}, "mcp_invalid_request"),
        ({"jsonrpc": "2.0", "result": {}}, "mcp_invalid_request"),
        ("just a string", "mcp_invalid_request"),
    ],
)
def test_malformed_messages(document: Any, reason: str) -> None:
    assert refused(body(document)).reason == reason


def test_not_json() -> None:
    error = refused(b"{nope")
    assert (error.status, error.rpc_code) == (400, messages.PARSE_ERROR)
    assert refused(b"\xff\xfe").reason == "mcp_parse_error"


@given(st.binary(max_size=300))
def test_garbage_gives_our_error_or_a_message(data: bytes) -> None:
    with contextlib.suppress(McpRefused):
        parse(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_gives_our_error_or_a_message(document: Any) -> None:
    with contextlib.suppress(McpRefused):
        parse(body(document))


CALL = parse(
    body(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {
                "name": "export",
                "arguments": {"rows": 5},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"},
            },
        }
    )
)


def test_stateless_headers_must_match_the_body() -> None:
    good = headers(mcp_protocol_version="2026-07-28", mcp_method="tools/call", mcp_name="export")
    assert check_headers(CALL, good) == "2026-07-28"
    encoded = headers(
        mcp_protocol_version="2026-07-28", mcp_method="tools/call", mcp_name="=?base64?ZXhwb3J0?="
    )
    assert check_headers(CALL, encoded) == "2026-07-28"  # the Base64 sentinel form
    for bad in (
        headers(mcp_protocol_version="2026-07-28", mcp_name="export"),  # no Mcp-Method
        headers(mcp_protocol_version="2026-07-28", mcp_method="tools/call"),  # no Mcp-Name
        headers(mcp_protocol_version="2026-07-28", mcp_method="tools/list", mcp_name="export"),
        headers(mcp_protocol_version="2026-07-28", mcp_method="tools/call", mcp_name="add"),
        headers(
            mcp_protocol_version="2026-07-28", mcp_method="tools/call", mcp_name="=?base64?!!!?="
        ),
        headers(mcp_protocol_version="2025-11-25", mcp_method="tools/call", mcp_name="add"),
    ):
        with pytest.raises(McpRefused) as caught:
            check_headers(CALL, bad)
        assert caught.value.rpc_code == messages.HEADER_MISMATCH


def test_the_protocol_version_header_must_match_meta() -> None:
    other = parse(body({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
    with pytest.raises(McpRefused):
        check_headers(other, headers(mcp_protocol_version="2026-07-28", mcp_method="tools/list"))
    # The handshake era has no such header requirement.
    assert check_headers(other, headers()) is None


def test_what_the_policy_is_told() -> None:
    call = target(ROUTE, "tools/call", {"name": "export", "arguments": {"rows": 5}})
    assert call.action == "mcp:tools/call"
    assert call.resource.type == "Tool" and call.resource.id == "tools/tools/export"
    assert call.resource.properties == {"domain": "finance", "classification": "pii"}
    assert (call.tool, call.args) == ("export", {"rows": 5})
    prompt = target(ROUTE, "prompts/get", {"name": "summarise"})
    assert prompt.resource.id == "tools/prompts/summarise"
    assert prompt.resource.properties["tags"] == ["llm"]
    record = target(ROUTE, "resources/read", {"uri": "patients://123"})
    assert (record.resource.type, record.resource.id) == ("Dataset", "patients://123")
    assert record.resource.properties["classification"] == "phi"
    assert record.args == {"uri": "patients://123"}
    other = target(ROUTE, "resources/read", {"uri": "file:///etc/hosts"})
    assert other.resource.properties["classification"] == "internal"
    listing = target(ROUTE, "tools/list", {})
    assert listing.resource is ROUTE.resource


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {}),
        ("tools/call", {"name": ""}),
        ("tools/call", {"name": 5}),
        ("tools/call", {"name": "x", "arguments": [1]}),
        ("prompts/get", {"name": "y" * 300}),
        ("resources/read", {}),
        ("resources/subscribe", {"uri": 7}),
    ],
)
def test_incomplete_targets(method: str, params: dict[str, Any]) -> None:
    with pytest.raises(McpRefused):
        target(ROUTE, method, params)


def test_mcp_routes_serve_one_path() -> None:
    assert ROUTE.matches("gw", "/mcp")
    assert not ROUTE.matches("gw", "/mcp/other")
