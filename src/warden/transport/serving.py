"""What Warden's servers share: a uvicorn server run in a thread (tests, the demo), and
background duties repeated on an interval off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
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


GRACEFUL_SHUTDOWN_S = 3  # seconds


def stop(server: uvicorn.Server, thread: threading.Thread | None) -> None:
    server.should_exit = True
    if thread is not None:
        thread.join(timeout=10)


def on_loop(loop: asyncio.AbstractEventLoop | None, change: Callable[[], None]) -> None:
    """Run ``change`` on ``loop``'s thread and wait for it.

    New TLS connections are set up on the event loop's thread. A certificate and key loaded
    into a live SSL context are two steps; made on that thread, no handshake can start between
    them with a certificate that does not match its key.
    """
    if loop is None or not loop.is_running():
        change()
        return
    try:
        if asyncio.get_running_loop() is loop:
            change()
            return
    except RuntimeError:
        pass  # not on any loop: hand over to the serving loop
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def apply() -> None:
        try:
            change()
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)

    loop.call_soon_threadsafe(apply)
    done.result(timeout=10)


def wait_for_stop() -> int:
    """Block the main thread until SIGINT or SIGTERM (servers run in threads); the signal."""
    received: list[int] = []
    done = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0]
