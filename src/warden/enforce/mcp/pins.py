"""Tool definitions pinned on first sight, so a server cannot change a tool under an agent.

The gateway pins each tool's definition (description, input and output schema, annotations)
the first time a listing shows it. A later listing with a different definition (a "rug pull")
holds the tool: it leaves the listing and calls to it are denied until an operator approves the
new definition (or the server goes back to the pinned one). Pins live in the store, so every
gateway and the control plane see the same ones; the set of held tools is also kept in memory
for the request path and refreshed from the store.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import insert, select, update

from warden.clock import utcnow
from warden.errors import NotFoundError
from warden.store import Store, schema

PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def definition_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The parts of a tool that say what it does and takes."""
    return {key: tool[key] for key in PINNED_FIELDS if key in tool}


def digest_of(definition: dict[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ToolPin:
    server: str
    tool: str
    digest: str
    definition: dict[str, Any]
    pinned_at: datetime
    pinned_by: str
    pending_digest: str | None
    pending_definition: dict[str, Any] | None
    pending_since: datetime | None

    @property
    def held(self) -> bool:
        return self.pending_digest is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool,
            "digest": self.digest,
            "definition": self.definition,
            "pinned_at": self.pinned_at.isoformat(),
            "pinned_by": self.pinned_by,
            "held": self.held,
            "pending_digest": self.pending_digest,
            "pending_definition": self.pending_definition,
            "pending_since": self.pending_since.isoformat() if self.pending_since else None,
        }


class ToolPins:
    """Pins per (server SPIFFE ID, tool name)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[tuple[str, str], str] = {}  # pinned digests this process has seen
        self._held: frozenset[tuple[str, str]] = frozenset()
        self._lock = threading.Lock()
        self.refresh()

    def is_held(self, server: str, tool: str) -> bool:
        """From memory: the tool's definition changed and waits for an operator."""
        return (server, tool) in self._held

    def observe(self, server: str, tool: dict[str, Any]) -> Literal["pinned", "held"]:
        """A listing showed ``tool``: pin it if new, compare it if known."""
        name = str(tool.get("name", ""))
        definition = definition_of(tool)
        digest = digest_of(definition)
        if self._known.get((server, name)) == digest and (server, name) not in self._held:
            return "pinned"  # the common case: no store round trip
        table = schema.mcp_tool_pins
        now = utcnow()
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.digest, table.c.pending_digest)
                .where(table.c.server == server)
                .where(table.c.tool == name)
            ).one_or_none()
            if row is None:
                conn.execute(
                    insert(table).values(
                        server=server,
                        tool=name,
                        digest=digest,
                        definition=definition,
                        pinned_at=now,
                        pinned_by="first-seen",
                    )
                )
                outcome: Literal["pinned", "held"] = "pinned"
                pinned = digest
            elif row.digest == digest:
                outcome, pinned = ("held" if row.pending_digest else "pinned"), digest
            else:
                if row.pending_digest != digest:
                    conn.execute(
                        update(table)
                        .where(table.c.server == server)
                        .where(table.c.tool == name)
                        .values(
                            pending_digest=digest,
                            pending_definition=definition,
                            pending_since=now,
                        )
                    )
                outcome, pinned = "held", str(row.digest)
        with self._lock:
            self._known[(server, name)] = pinned
            if outcome == "held":
                self._held = self._held | {(server, name)}
        return outcome

    def observe_all(self, server: str, tools: list[dict[str, Any]]) -> set[str]:
        """Observe a listing; returns the names of the tools that are held."""
        return {str(t["name"]) for t in tools if self.observe(server, t) == "held"}

    def approve(self, server: str, tool: str, operator: str) -> ToolPin:
        """Pin the pending definition: the tool is listed and callable again."""
        table = schema.mcp_tool_pins
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.pending_digest, table.c.pending_definition)
                .where(table.c.server == server)
                .where(table.c.tool == tool)
            ).one_or_none()
            if row is None or row.pending_digest is None:
                raise NotFoundError(f"no changed definition of {tool!r} on {server} waits")
            conn.execute(
                update(table)
                .where(table.c.server == server)
                .where(table.c.tool == tool)
                .values(
                    digest=row.pending_digest,
                    definition=row.pending_definition,
                    pinned_at=utcnow(),
                    pinned_by=operator,
                    pending_digest=None,
                    pending_definition=None,
                    pending_since=None,
                )
            )
        self.refresh()
        return self.get(server, tool)

    def get(self, server: str, tool: str) -> ToolPin:
        table = schema.mcp_tool_pins
        with self._store.begin() as conn:
            row = conn.execute(
                select(table).where(table.c.server == server).where(table.c.tool == tool)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"no pin for {tool!r} on {server}")
        return _pin(row)

    def list(self, *, held_only: bool = False) -> list[ToolPin]:
        table = schema.mcp_tool_pins
        query = select(table).order_by(table.c.server, table.c.tool)
        if held_only:
            query = query.where(table.c.pending_digest.is_not(None))
        with self._store.begin() as conn:
            return [_pin(r) for r in conn.execute(query).all()]

    def refresh(self) -> None:
        """Re-read which tools are held (another process may have held or approved one)."""
        table = schema.mcp_tool_pins
        with self._store.begin() as conn:
            rows = conn.execute(
                select(table.c.server, table.c.tool).where(table.c.pending_digest.is_not(None))
            ).all()
        held = frozenset((str(r.server), str(r.tool)) for r in rows)
        with self._lock:
            for key in self._held - held:
                self._known.pop(key, None)  # approved elsewhere: compare again next time
            self._held = held


def _pin(row: Any) -> ToolPin:
    return ToolPin(
        server=row.server,
        tool=row.tool,
        digest=row.digest,
        definition=dict(row.definition),
        pinned_at=row.pinned_at,
        pinned_by=row.pinned_by,
        pending_digest=row.pending_digest,
        pending_definition=dict(row.pending_definition) if row.pending_definition else None,
        pending_since=row.pending_since,
    )
