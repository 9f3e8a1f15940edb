"""What Warden's servers share: a uvicorn server run in a thread (tests, the demo), and
background duties repeated on an interval off the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from warden.transport.loop import run as run_loop

log = logging.getLogger("warden.server")


async def every(interval_s: float, duty: Callable[[], object], what: str) -> None:
    """Run ``duty`` in a worker thread every ``interval_s`` seconds; log its failures (a
    failing duty leaves its view to age, and the view then refuses to answer)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(duty)
        except Exception as exc:
            log.warning("%s failed: %s", what, exc)


def start_in_thread(
    server: uvicorn.Server,
    serve: Callable[[], Coroutine[Any, Any, None]],
    name: str,
    timeout_s: float = 10.0,
) -> tuple[threading.Thread, int]:
    """Serve in a daemon thread; wait until it listens. Returns the thread and the port."""
    thread = threading.Thread(target=lambda: run_loop(serve()), daemon=True, name=name)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.02)
    return thread, int(server.servers[0].sockets[0].getsockname()[1])


def stop(server: uvicorn.Server, thread: threading.Thread | None) -> None:
    server.should_exit = True
    if thread is not None:
        thread.join(timeout=10)
