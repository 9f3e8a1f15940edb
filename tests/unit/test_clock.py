"""Times as Warden writes them: RFC 3339, UTC, always to the microsecond, whatever the
second or zone; the same text datetime's own formatting gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from warden.clock import isoformat


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_it_is_rfc3339_to_the_microsecond(first: datetime, second: datetime) -> None:
    for value in (first, second, first, first.replace(microsecond=0)):  # reused seconds too
        expected = value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        assert isoformat(value) == expected


def test_other_zones_and_naive_times_are_written_as_utc() -> None:
    at = datetime(2026, 12, 4, 2, 0, 0, 5, tzinfo=UTC)
    assert isoformat(at.astimezone(timezone(timedelta(hours=5, minutes=30)))) == (
        "2026-12-04T02:00:00.000005Z"
    )
    assert isoformat(at.replace(tzinfo=None)) == "2026-12-04T02:00:00.000005Z"
