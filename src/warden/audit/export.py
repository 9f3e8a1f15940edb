"""Log entries for other systems: OCSF 1.x events and OpenTelemetry log records.

Decisions become OCSF API Activity events (class 6003) whose ``authorizations`` carry the
decision and the determining policies; identity and policy events become OCSF Entity
Management (3004) and base events (0) with Warden's fields kept under ``unmapped``. The
OpenTelemetry form is OTLP/JSON ``ExportLogsServiceRequest`` documents, one per line, as the
collector's ``otlpjsonfile`` receiver reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warden import __version__

OCSF_VERSION = "1.3.0"
API_ACTIVITY = 6003
ENTITY_MANAGEMENT = 3004
_ACTIVITY = {"GET": 2, "HEAD": 2, "OPTIONS": 2, "POST": 1, "PUT": 3, "PATCH": 3, "DELETE": 4}


def _millis(at: str) -> int:
    return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)


def to_ocsf(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry as an OCSF event."""
    metadata = {
        "version": OCSF_VERSION,
        "uid": entry.get("decision_id") or f"warden-log-{entry.get('seq')}",
        "product": {"name": "Warden", "vendor_name": "Warden", "version": __version__},
        "log_name": "warden decision log",
        "sequence": entry.get("seq"),
    }
    if entry.get("kind") == "decision":
        return _decision(entry, metadata)
    class_uid = ENTITY_MANAGEMENT if entry.get("kind") == "identity" else 0
    activity = 3 if class_uid else 99  # Update; Other
    return {
        "class_uid": class_uid,
        "category_uid": 3 if class_uid else 0,
        "activity_id": activity,
        "type_uid": class_uid * 100 + activity,
        "severity_id": 1,
        "time": _millis(entry["at"]),
        "message": f"{entry.get('kind')}: {entry.get('event', '')}",
        "metadata": metadata,
        "unmapped": entry,
    }


def _decision(entry: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    action = str(entry.get("action", ""))
    verb = action.split(":", 1)[-1].upper()
    activity = _ACTIVITY.get(verb, 99)
    allowed = entry.get("decision") == "allow"
    reasons = entry.get("reasons") or []
    subject = entry.get("subject") or {}
    context = entry.get("context") or {}
    resource = entry.get("resource") or {}
    return {
        "class_uid": API_ACTIVITY,
        "category_uid": 6,
        "activity_id": activity,
        "type_uid": API_ACTIVITY * 100 + activity,
        "severity_id": 1 if allowed else 3,
        "status_id": 1 if allowed else 2,
        "status": "Success" if allowed else "Failure",
        "time": _millis(entry["at"]),
        "message": f"{entry.get('decision')} {action} on {_resource_name(resource)}",
        "actor": {
            "user": {
                "uid": subject.get("id"),
                "type": "Service",
                "credential_uid": subject.get("credential"),
            },
            "authorizations": [
                {
                    "decision": "allowed" if allowed else "denied",
                    "policy": {
                        "uid": r.get("policy"),
                        "name": r.get("policy"),
                        "desc": r.get("message"),
                    },
                }
                for r in reasons
            ],
        },
        "api": {"operation": action, "service": {"name": str(entry.get("enforcement_point"))}},
        "src_endpoint": {"ip": context.get("source_ip")},
        "resources": [
            {
                "uid": resource.get("id"),
                "type": resource.get("type"),
                "data_classification": {
                    "classification": (resource.get("properties") or {}).get("classification")
                },
            }
        ],
        "metadata": metadata,
        "unmapped": {
            "risk": entry.get("risk"),
            "health": entry.get("health"),
            "obligations": entry.get("obligations"),
            "work_order": entry.get("work_order"),
            "policy_revision": entry.get("policy_revision"),
            "masked": entry.get("masked"),
            "args": context.get("args"),
        },
    }


def to_otel(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Entries as one OTLP/JSON ``ExportLogsServiceRequest``."""
    records = []
    for entry in entries:
        denied = entry.get("decision") == "deny"
        attributes = {
            "warden.kind": entry.get("kind"),
            "warden.seq": entry.get("seq"),
            "warden.decision_id": entry.get("decision_id"),
            "warden.decision": entry.get("decision"),
            "warden.action": entry.get("action"),
            "enduser.id": (entry.get("subject") or {}).get("id"),
            "warden.policies": ",".join(r.get("policy", "") for r in entry.get("reasons") or []),
        }
        records.append(
            {
                "timeUnixNano": str(_millis(entry["at"]) * 1_000_000),
                "severityNumber": 13 if denied else 9,  # WARN, INFO
                "severityText": "WARN" if denied else "INFO",
                "body": {"stringValue": _summary(entry)},
                "attributes": [
                    {"key": k, "value": _any_value(v)}
                    for k, v in attributes.items()
                    if v is not None
                ],
            }
        )
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "warden"}},
                        {"key": "service.version", "value": {"stringValue": __version__}},
                    ]
                },
                "scopeLogs": [{"scope": {"name": "warden.audit"}, "logRecords": records}],
            }
        ]
    }


def _summary(entry: dict[str, Any]) -> str:
    if entry.get("kind") == "decision":
        reasons = "; ".join(
            f"{r.get('policy')}: {r.get('message')}" for r in entry.get("reasons") or []
        )
        agent = (entry.get("subject") or {}).get("id")
        return f"{entry.get('decision')} {entry.get('action')} for {agent} ({reasons})"
    return f"{entry.get('kind')} {entry.get('event', '')}"


def _resource_name(resource: dict[str, Any]) -> str:
    return f"{resource.get('type')}:{resource.get('id')}"


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": str(value)}
