"""Server-Sent Events read incrementally and bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.enforce.mcp.sse import EventReader, EventTooLarge, encode


def test_events_split_anywhere_come_out_whole() -> None:
    stream = (
        b'event: message\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: keep-alive\r\n\r\ndata: x\n\n'
    )
    for cut in range(1, len(stream)):
        reader = EventReader(1024)
        events = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [(e.event, e.id, e.data) for e in events if not e.is_comment] == [
            ("message", "7", '{"a":\n1}'),
            ("message", None, "x"),
        ], cut
        assert not reader.pending


def test_an_event_over_the_bound_fails_closed() -> None:
    reader = EventReader(1024)
    with pytest.raises(EventTooLarge):
        reader.feed(b"data: " + b"x" * 2000)  # no end in sight: refused before it ends
    reader = EventReader(1024)
    with pytest.raises(EventTooLarge):
        reader.feed(b"data: " + b"x" * 2000 + b"\n\n")


def test_an_unfinished_event_is_pending() -> None:
    reader = EventReader(1024)
    assert reader.feed(b"data: half") == []
    assert reader.pending


def test_encode_round_trips() -> None:
    raw = encode('{"x":\n1}', event_id="9")
    (event,) = EventReader(1024).feed(raw)
    assert (event.id, event.data) == ("9", '{"x":\n1}')


@given(st.lists(st.binary(max_size=50), max_size=20))
def test_garbage_gives_events_or_our_error(chunks: list[bytes]) -> None:
    reader = EventReader(256)
    try:
        for chunk in chunks:
            reader.feed(chunk)
    except EventTooLarge:
        pass
