"""The one place that calls the Cedar engine on the request path.

cedarpy's public ``is_authorized`` wraps its native batch call with a copy of the request, a
JSON round trip of the context and result objects; on the hot path Warden calls the native
function directly with pre-parsed policies and entities. If cedarpy's internals move, the public
API is used instead (slower, same answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import cedarpy

try:
    from cedarpy import _internal as _native
except ImportError:  # pragma: no cover - a cedarpy without the native module layout
    _native = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class CedarAnswer:
    allowed: bool
    reasons: tuple[str, ...]  # Cedar policy ids (policy0, ...) that determined the decision
    errors: tuple[str, ...]


def authorize(
    principal: dict[str, str],
    action: dict[str, str],
    resource: dict[str, str],
    context: dict[str, Any] | str,
    policies: Any,
    entities: Any,
) -> CedarAnswer:
    """Evaluate one request with a pre-parsed ``PolicySet`` and ``Entities`` handle; the
    context may be given already serialised as JSON."""
    if _native is not None:
        request = {
            "principal": principal,
            "action": action,
            "resource": resource,
            "context": context if isinstance(context, str) else json.dumps(context),
        }
        raw = _native.is_authorized_batch([request], policies, entities._inner, None, False)[0]
        answer = json.loads(raw)
        diagnostics = answer.get("diagnostics", {})
        return CedarAnswer(
            answer.get("decision") == "Allow",
            tuple(diagnostics.get("reason", ())),
            tuple(str(e) for e in diagnostics.get("errors", ())),
        )
    result = cedarpy.is_authorized(  # pragma: no cover
        {
            "principal": principal,
            "action": action,
            "resource": resource,
            "context": json.loads(context) if isinstance(context, str) else context,
        },
        policies,
        entities,
    )
    return CedarAnswer(  # pragma: no cover
        result.allowed,
        tuple(result.diagnostics.reasons),
        tuple(str(e) for e in result.diagnostics.errors),
    )
