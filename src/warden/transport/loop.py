"""Running Warden's servers on uvloop (libuv) where it is available.

uvicorn picks uvloop only when it runs the event loop itself; Warden's servers run their
own loop (to serve beside their background duties), so they ask for it here.
"""

from __future__ import annotations

import asyncio
import gc
import sys
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


# How long a thread that wants the interpreter waits for the one running Python before it
# asks for a turn (CPython's default: 5 ms). Under load the event loop runs Python without a
# pause for longer than that, and the decision log's writer, whose commit every waiting request
# needs, would wait behind it; at 0.5 ms it gets its turn and the loop does not run dry.
# Interleaved on one rig (benchmarks/compare_gateways.py, three runs of 4-8 rounds): 10-14%
# more requests per second at 32 connections and 5-9% less CPU per request, one connection
# and MCP unchanged within the noise.
SWITCH_INTERVAL_S = 0.0005


def tune_for_serving() -> None:
    """Call once a server is set up, before it serves: :func:`freeze_startup_heap`, and
    threads take turns at the interpreter every :data:`SWITCH_INTERVAL_S`."""
    freeze_startup_heap()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
