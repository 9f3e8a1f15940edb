"""A pure ASGI middleware that refuses request bodies over a bound, declared or streamed."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """413 for a ``Content-Length`` over ``max_bytes``, or a streamed body that grows past it."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        large: tuple[tuple[str, ...], int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # (path suffixes, bound): the routes that take large bodies (SBOMs, scan reports).
        self.large = large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes
        if self.large is not None and scope["path"].endswith(self.large[0]):
            max_bytes = self.large[1]
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "invalid_content_length")
                    return
                if declared > max_bytes:
                    await _reject(send, 413, "body_too_large")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, 413, "body_too_large")


async def _reject(send: Send, status: int, code: str) -> None:
    body: Any = json.dumps({"error": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
