"""Running Warden's servers on uvloop (libuv) where it is available.

uvicorn picks uvloop only when it runs the event loop itself; Warden's servers run their
own loop (to serve beside their background duties), so they ask for it here.
"""

from __future__ import annotations

import asyncio
import gc
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


# Collections of the youngest generation after this many allocations (CPython's default: 700).
# A proxied request allocates a few thousand short-lived objects, nearly all freed by reference
# counting; at the default the collector ran several times per request.
GC_YOUNG_THRESHOLD = 20_000


def freeze_startup_heap() -> None:
    """Call once a server is set up: move what it allocated to start (policies, schemas,
    certificates, modules) out of the collector's sight, and collect less often.

    Long-lived objects are then never traversed again, and the young generation is
    collected once per few requests instead of several times per request.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
