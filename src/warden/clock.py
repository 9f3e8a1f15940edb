"""Time, in one place: aware UTC datetimes only."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; naive values (as SQLite returns them) are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# The text of the last second formatted, with its fields: every decision writes its time, and
# datetime.isoformat costs three times what reusing the second costs. One tuple, swapped whole,
# so threads never see the fields of one second with the text of another.
_second: list[tuple[tuple[int, ...], str]] = [((), "")]


def isoformat(value: datetime) -> str:
    """RFC 3339 with a ``Z`` suffix, always to the microsecond (one fixed width)."""
    if value.tzinfo is not UTC:
        value = as_utc(value)
    cached = _second[0]
    fields = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    if cached[0] != fields:
        cached = _second[0] = (fields, value.replace(tzinfo=None, microsecond=0).isoformat())
    return f"{cached[1]}.{value.microsecond:06d}Z"
