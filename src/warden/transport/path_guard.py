"""Refusing ambiguous request paths before any routing.

A path is served only when it means one thing to every parser on the way: no dot segments
(plain or percent-encoded), no encoded slashes or backslashes, no empty segments, no invalid or
overlong percent-encodings, no control characters. Anything else is a 400, never a guess.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_PATH_BYTES = 4096
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f\\]")
# Encoded '/', '\\', '.', NUL, and any encoded byte >= 0x80 (overlong UTF-8 tricks) are refused.
_REFUSED_ENCODED = {0x2F, 0x5C, 0x2E, 0x00}


def path_problem(raw_path: bytes) -> str | None:
    """Why ``raw_path`` is ambiguous, or None when it is clean."""
    if len(raw_path) > MAX_PATH_BYTES:
        return "path too long"
    if not raw_path.startswith(b"/"):
        return "path must start with '/'"
    if _BAD_PERCENT.search(raw_path):
        return "invalid percent-encoding"
    for match in _PERCENT.finditer(raw_path):
        byte = int(match.group(1), 16)
        if byte in _REFUSED_ENCODED or byte >= 0x80 or byte < 0x20:
            return f"encoded byte 0x{byte:02x} is not allowed"
    if _CONTROL.search(raw_path):
        return "control character or backslash in path"
    segments = raw_path.split(b"/")[1:]
    for index, segment in enumerate(segments):
        if segment in (b".", b".."):
            return "dot segment in path"
        if segment == b"" and index != len(segments) - 1:
            return "empty path segment"
    return None


class PathGuard:
    """Pure ASGI middleware: 400 ``ambiguous_path`` for any path :func:`path_problem` rejects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            raw = raw.split(b"?", 1)[0]
            if path_problem(raw) is not None:
                body = json.dumps({"error": "ambiguous_path"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
