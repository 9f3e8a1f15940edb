"""The flows graph: denials drawn dashed and labelled in words, names escaped, sizes sane."""

from __future__ import annotations

from warden.console.flows import flows_svg, sparkline


def test_denials_are_dashed_and_labelled_and_text_is_escaped() -> None:
    svg = str(
        flows_svg(
            [
                ("invoice-bot", "Endpoint::ledger/x", 30, 0),
                ("invoice-bot", 'Endpoint::<script>alert("x")</script>', 4, 3),
            ]
        )
    )
    assert svg.count('class="edge denied"') == 1 and svg.count('class="edge"') == 1
    assert "✕ 3 denied" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<title>invoice-bot to Endpoint::ledger/x: 30 requests, 0 denied</title>" in svg


def test_an_empty_graph_and_a_trend() -> None:
    assert "<svg" in str(flows_svg([]))
    assert "no data" in str(sparkline([]))
    line = str(sparkline([0, 500, 1000, 2000]))
    assert "polyline" in line and 'aria-label="risk over the last 4 decisions' in line
