"""Server-Sent Events, read incrementally and bounded: the gateway sees each event whole before
any of it reaches the agent, and an event past the bound ends the stream (fail closed)."""

from __future__ import annotations

from dataclasses import dataclass


class EventTooLarge(Exception):
    """An event (or the bytes before its end) grew past the bound."""


@dataclass(frozen=True)
class Event:
    """One event: its ``data`` (lines joined by newlines), ``event`` type, ``id``, ``retry``,
    and the event as received (line endings normalised), to pass on unchanged."""

    data: str | None
    event: str = "message"
    id: str | None = None
    retry: str | None = None
    raw: bytes = b""

    @property
    def is_comment(self) -> bool:
        """Only comments (keep-alives): nothing to decide or inspect."""
        return self.data is None and self.id is None and self.retry is None


def encode(data: str, *, event: str = "message", event_id: str | None = None) -> bytes:
    """An event carrying ``data``."""
    lines = [] if event == "message" else [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


class EventReader:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk
        # Line endings are \r\n, \n or \r: normalise, holding back a trailing \r that may be
        # the first half of a \r\n split across chunks.
        held = b""
        if buffer.endswith(b"\r"):
            buffer, held = buffer[:-1], b"\r"
        buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        while (end := buffer.find(b"\n\n")) >= 0:
            block, buffer = buffer[:end], buffer[end + 2 :]
            if len(block) > self._max:
                raise EventTooLarge()
            if block.strip(b"\n"):
                events.append(_event(block))
        self._buffer = buffer + held
        if len(self._buffer) > self._max:
            raise EventTooLarge()
        return events

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished event are held (the stream ended mid-event)."""
        return bool(self._buffer.strip(b"\r\n"))


def _event(block: bytes) -> Event:
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in block.decode("utf-8", errors="replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("event", "id", "retry"):
            fields[name] = value
    return Event(
        data="\n".join(data) if data else None,
        event=fields.get("event", "message") or "message",
        id=fields.get("id"),
        retry=fields.get("retry"),
        raw=block + b"\n\n",
    )
