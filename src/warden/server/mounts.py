"""Serving a part of the control plane under its own prefix with its own application (the
SCIM service provider, the console), each with its own errors and limits."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


class WithPrefix:
    """Serve ``prefix`` and everything under it with ``part``, anything else with ``app``.
    ``part`` sees the prefix as its root path (as a Starlette mount would, but ``prefix``
    itself is served too, not redirected to ``prefix/``)."""

    def __init__(self, app: Any, prefix: str, part: Any) -> None:
        self.app = app
        self.prefix = prefix
        self.part = part

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            root = scope.get("root_path", "") + self.prefix
            await self.part({**scope, "root_path": root}, receive, send)
            return
        await self.app(scope, receive, send)
