"""One MCP exchange as the gateway learns it, and the calls Warden makes itself: store
lookups off the event loop, and messages to a server on an agent's session (the denial Warden
answers a server's question with, the end of a contained agent's session)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import yarl

from warden.enforce.exchange import Incoming, Refused
from warden.enforce.mcp.messages import Message
from warden.enforce.mcp.streams import OpenStream
from warden.enforce.routes import Route
from warden.errors import WardenError
from warden.policy.model import Decision, DecisionRequest

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

T = TypeVar("T")


@dataclass
class Exchange:
    """One HTTP exchange on an MCP endpoint, as it is learnt."""

    route: Route
    incoming: Incoming
    receive: Any
    message: Message | None = None
    session_id: str | None = None
    started: bool = False  # the answer's head is sent: errors now end the stream instead
    stream: OpenStream | None = None
    request: DecisionRequest | None = None  # what was decided

    @property
    def message_id(self) -> str | int | None:
        return self.message.id if self.message is not None else None

    @property
    def method(self) -> str:
        return self.message.method if self.message is not None else ""

    @property
    def asks(self) -> bool:
        """The agent sent a request: a JSON-RPC response is expected back."""
        return self.message is not None and self.message.kind == "request"


async def off_loop(call: Callable[..., T], *args: Any) -> T:
    """A store call in a worker thread; a store that fails denies (fail closed)."""
    try:
        return await asyncio.to_thread(call, *args)
    except WardenError as exc:
        raise Refused(503, exc.code, exc.message) from exc


async def on_agents_session(
    gateway: Gateway, exchange: Exchange, method: str, body: bytes, decision: Decision
) -> None:
    """Send the server a request of Warden's own on the agent's session (best effort: a
    server that is gone has nothing left to be told)."""
    route = exchange.route
    url = yarl.URL(route.upstream, encoded=True)
    headers = gateway.upstream_headers(
        exchange.incoming,
        route,
        decision,
        method=method,
        path=url.raw_path_qs,
        body=body,
        inspecting=True,
    )
    if body:
        headers["content-type"] = "application/json"
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, WardenError):
        async with gateway.upstreams.session(route.upstream_id).request(
            method, url, headers=headers, data=body or None, timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            await response.read()
