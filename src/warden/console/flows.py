"""The flows graph: agents on the left, the resources they reached on the right, one line per
pair, drawn as SVG on the server (no script, no library).

A line's width grows with the request count; a pair with denials is drawn dashed and labelled
with how many were denied, so the picture does not depend on colour. Each line carries a
``<title>`` for screen readers and pointer hover; the page repeats the figures in a table.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

ROW_H = 34
TOP = 30
LEFT_X = 190
RIGHT_X = 610
WIDTH = 860
LABEL_MAX = 28


def _label(text: str) -> str:
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def flows_svg(flows: list[tuple[str, str, int, int]]) -> Markup:
    """``flows``: (agent, resource, requests, denied)."""
    agents = sorted({a for a, _, _, _ in flows})
    resources = sorted({r for _, r, _, _ in flows})
    rows = max(len(agents), len(resources), 1)
    height = TOP * 2 + rows * ROW_H
    y_agent = {a: TOP + i * ROW_H + ROW_H / 2 for i, a in enumerate(agents)}
    y_resource = {r: TOP + i * ROW_H + ROW_H / 2 for i, r in enumerate(resources)}
    top = max((n for _, _, n, _ in flows), default=1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'class="flows" role="img" aria-labelledby="flows-title">',
        '<title id="flows-title">Requests from agents to resources</title>',
        f'<text x="{LEFT_X}" y="16" class="col" text-anchor="end">agents</text>',
        f'<text x="{RIGHT_X}" y="16" class="col">resources</text>',
    ]
    for agent, resource, count, denied in flows:
        y1, y2 = y_agent[agent], y_resource[resource]
        width = 1.5 + 6 * math.log1p(count) / math.log1p(top)
        mid = (LEFT_X + RIGHT_X) / 2
        kind = "edge denied" if denied else "edge"
        what = f"{agent} to {resource}: {count} requests, {denied} denied"
        parts.append(
            f'<path class="{kind}" d="M{LEFT_X + 8} {y1:.1f} C{mid} {y1:.1f} {mid} {y2:.1f} '
            f'{RIGHT_X - 8} {y2:.1f}" stroke-width="{width:.1f}"><title>{escape(what)}</title>'
            "</path>"
        )
        if denied:
            parts.append(
                f'<text class="edge-label" x="{mid:.0f}" y="{(y1 + y2) / 2 - 4:.1f}" '
                f'text-anchor="middle">✕ {denied} denied</text>'
            )
    for agent, y in y_agent.items():
        parts.append(f'<circle class="node agent" cx="{LEFT_X}" cy="{y:.1f}" r="6"/>')
        parts.append(
            f'<text x="{LEFT_X - 12}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_label(agent))}</text>"
        )
    for resource, y in y_resource.items():
        parts.append(
            f'<rect class="node resource" x="{RIGHT_X - 6}" y="{y - 6:.1f}" '
            'width="12" height="12"/>'
        )
        parts.append(f'<text x="{RIGHT_X + 12}" y="{y + 4:.1f}">{escape(_label(resource))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text above is escaped)


def sparkline(points: list[int], maximum: int = 1000) -> Markup:
    """A small risk trend (0..``maximum``) as inline SVG, with its values in the title."""
    if not points:
        return Markup('<span class="muted">no data</span>')
    w, h = 90, 22
    step = w / max(len(points) - 1, 1)
    coords = " ".join(
        f"{i * step:.1f},{h - 2 - (h - 4) * min(p, maximum) / maximum:.1f}"
        for i, p in enumerate(points)
    )
    label = f"risk over the last {len(points)} decisions: " + ", ".join(map(str, points[-5:]))
    return Markup(  # noqa: S704 (numbers only, and an escaped label)
        f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{escape(label)}"><polyline points="{coords}"/></svg>'
    )
