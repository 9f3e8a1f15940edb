"""Running Warden's servers on uvloop (libuv) where it is available.

uvicorn picks uvloop only when it runs the event loop itself; Warden's servers run their
own loop (to serve beside their background duties), so they ask for it here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None  # type: ignore[assignment]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when installed."""
    if uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)  # pragma: no cover
