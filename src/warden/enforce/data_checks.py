"""The gateway's data-loss checks on what an agent sends and what it gets (see
:mod:`warden.trust.dlp`): the request's outbound content and bulk flag for the decision
context, and, on an answer, the DLP verdict, with a bulk answer decided again by the policy
as ``data:export``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warden import untrusted_json
from warden.enforce.exchange import Incoming, RecordFailed
from warden.enforce.routes import Route
from warden.policy.model import Decision, DecisionRequest
from warden.trust.classify import records_of
from warden.trust.dlp import destination_region

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

SENSITIVE = ("confidential", "pii", "phi", "pci")


def request_document(incoming: Incoming) -> Any:
    """What a request's body carries, for outbound classification: its JSON, else its text
    (a body that is neither is its bytes' length of nothing)."""
    if not incoming.body:
        return None
    kind = (incoming.header(b"content-type") or "").lower()
    if "json" in kind:
        try:
            return incoming.body_json()
        except ValueError:
            pass
    return [incoming.body.decode("utf-8", errors="replace")]


def region_of(gateway: Gateway, agent: str) -> str:
    """Where an answer to ``agent`` goes (its ``region`` label, else the gateway's)."""
    snapshot = gateway.engine.snapshot
    facts = snapshot.agents.get(agent) if snapshot is not None else None
    return destination_region(facts.labels if facts is not None else (), gateway.region)


def declared_class(route: Route, resource_properties: dict[str, Any] | None = None) -> str:
    properties = resource_properties if resource_properties is not None else route.properties
    return str(properties.get("classification", ""))


async def answer_verdict(
    gateway: Gateway,
    incoming: Incoming,
    route: Route,
    decision: Decision,
    body: bytes | Any,
    declared: str,
) -> str | None:
    """Why this answer may not leave (None: it may). ``body``: JSON bytes or a document."""
    dlp = gateway.dlp
    if dlp is None:
        return None
    verdict = dlp.inspect(
        incoming.subject,
        route.name,
        declared,
        region_of(gateway, incoming.subject),
        body,
    )
    if verdict.blocked is not None:
        incoming.blocked = verdict.blocked
        return verdict.blocked
    found = verdict.classification
    if found is None:
        return None
    refused = None
    if verdict.bulk:
        refused = await _decide_export(gateway, incoming, route, found.records)
    if refused is None:
        refused = dlp.take(incoming.subject, route.name, decision.obligations, found)
    if refused is not None:
        incoming.blocked = refused
    else:  # an MCP stream's events add up
        incoming.records += found.records
        incoming.classes = tuple(sorted({*incoming.classes, *found.per_class}))
    return refused


async def _decide_export(
    gateway: Gateway, incoming: Incoming, route: Route, records: int
) -> str | None:
    # Far more records than this agent usually gets: the policy decides it as an export.
    request = DecisionRequest(
        subject_type="Agent",
        subject_id=incoming.subject,
        action="data:export",
        resource=route.resource,
        context={**gateway.context(incoming, route, args={"rows": records}), "bulk": True},
    )
    export = gateway.engine.reserve(gateway.engine.decide(request))  # a work order's use
    try:
        await gateway.record(export, request)
    except RecordFailed:
        return "record_failed"
    return None if export.allowed else f"bulk_export:{export.reasons[0].policy}"


def mcp_records(result: dict[str, Any]) -> list[Any]:
    """The records an MCP result carries: its structured content, else its text contents
    (JSON when they parse, text when not), resource contents and prompt messages."""
    structured = result.get("structuredContent")
    if isinstance(structured, (dict, list)):
        return records_of(structured)
    records: list[Any] = []
    items = [*(result.get("content") or []), *(result.get("contents") or [])]
    for message in result.get("messages") or []:
        if isinstance(message, dict):
            items.append(message.get("content"))
    for item in items:
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str):
            continue
        try:
            parsed = untrusted_json.loads(text)
        except ValueError:
            records.append(text)
            continue
        records.extend(parsed if isinstance(parsed, list) else [parsed])
    return records
