"""Webhook notifications with an HMAC-signed JSON body.

The receiver checks ``X-Warden-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 under the shared key of ``"<t>." + body`` (the timestamp bounds replays; compare
in constant time). ``X-Warden-Event-Id`` is the same on every retry of one notification, so a
receiver can drop duplicates. ``format: slack`` and ``teams`` shape the body as those
services' incoming webhooks expect (Slack ``text`` and ``blocks``; a Teams message with an
Adaptive Card); the signature is the same.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time
from typing import Any

import httpx

from warden.config import Webhook
from warden.errors import ConfigError

SIGNATURE_HEADER = "X-Warden-Signature"
EVENT_HEADER = "X-Warden-Event-Id"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Warden-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, *, max_age_s: float = 300) -> bool:
    """What a receiver does: the signature matches and is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > max_age_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def read_secret(webhook: Webhook) -> bytes:
    """The key, from a file only its owner may read (a secret others can read is no secret)."""
    try:
        info = os.stat(webhook.secret_file)
        secret = webhook.secret_file.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"webhook secret {webhook.secret_file}: {exc}") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"webhook secret {webhook.secret_file} is readable by others")
    if len(secret) < 16:
        raise ConfigError(f"webhook secret {webhook.secret_file} is shorter than 16 bytes")
    return secret


def body_for(webhook: Webhook, message: dict[str, Any]) -> dict[str, Any]:
    """The JSON body in the receiver's format."""
    text = str(message.get("summary", ""))
    if webhook.format == "slack":
        fields = [
            {"type": "mrkdwn", "text": f"*{k}*\n{v}"}
            for k, v in _facts(message)
            if v not in ("", None)
        ]
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*Warden*: {text}"}},
                {"type": "section", "fields": fields[:10]},
            ],
            "warden": message,
        }
    if webhook.format == "teams":
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "weight": "Bolder", "text": f"Warden: {text}"},
                            {
                                "type": "FactSet",
                                "facts": [
                                    {"title": k, "value": str(v)}
                                    for k, v in _facts(message)
                                    if v not in ("", None)
                                ],
                            },
                        ],
                    },
                }
            ],
            "warden": message,
        }
    return message


def _facts(message: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (key, message.get(key))
        for key in ("agent", "playbook", "trigger", "score", "incident", "actions")
    ]


def send(webhook: Webhook, message: dict[str, Any], event_id: str) -> int:
    """Post ``message``; the receiver's status. Raises on a transport error or a status that
    is not 2xx (the caller retries)."""
    body = json.dumps(body_for(webhook, message), separators=(",", ":"), default=str).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(read_secret(webhook), int(time.time()), body),
        EVENT_HEADER: event_id,
        "User-Agent": "warden-response",
    }
    response = httpx.post(webhook.url, content=body, headers=headers, timeout=webhook.timeout_s)
    if not 200 <= response.status_code < 300:
        raise httpx.HTTPStatusError(
            f"webhook answered {response.status_code}", request=response.request, response=response
        )
    return response.status_code
