"""``warden demo --report report.html``: one self-contained HTML file (no script, nothing
fetched) with the scenarios' outcomes, a timeline of the run, each agent's risk over time as
a chart, and every decision with its reasons, read back from the decision log."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from warden.audit.reader import LogReader
from warden.demo.runner import Played
from warden.store import Store

TEMPLATE = Path(__file__).with_name("report.html")


def _agent(spiffe_id: str) -> str:
    return spiffe_id.rsplit("/", 1)[-1]


def _chart(points: list[tuple[float, int]], start: float, end: float) -> Markup:
    """Risk (0-1000) against time as an SVG line, with the values in its label."""
    w, h, pad = 240, 90, 4
    span = max(end - start, 1.0)
    coords = " ".join(
        f"{pad + (w - 2 * pad) * (t - start) / span:.1f},"
        f"{h - pad - (h - 2 * pad) * min(score, 1000) / 1000:.1f}"
        for t, score in points
    )
    label = f"risk from {points[0][1]} to {points[-1][1]}, highest {max(s for _, s in points)}"
    return Markup(  # noqa: S704 (numbers, and an escaped label)
        f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{escape(label)}">'
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#f6f8fa"/>'
        f'<line x1="0" x2="{w}" y1="{h - pad - (h - 2 * pad) * 0.6:.1f}" '
        f'y2="{h - pad - (h - 2 * pad) * 0.6:.1f}" stroke="#b42318" stroke-dasharray="4 3"/>'
        f'<polyline points="{coords}" fill="none" stroke="#0b5cad" stroke-width="2"/></svg>'
    )


def write_report(path: Path, store: Store, played: list[Played], verified: bool) -> None:
    reader = LogReader(store)
    entries = [json.loads(data) for _, data in reader.entries(0, reader.size())]
    decisions, timeline = [], []
    risk: dict[str, list[tuple[float, int]]] = defaultdict(list)
    times: list[float] = []
    for e in entries:
        at = str(e.get("at", ""))
        if e.get("kind") == "decision":
            subject = str(e.get("subject", {}).get("id", ""))
            resource = e.get("resource", {})
            score = (e.get("risk") or {}).get("score")
            when = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
            times.append(when)
            if isinstance(score, int) and subject.startswith("spiffe://"):
                risk[_agent(subject)].append((when, score))
            decisions.append(
                {
                    "at": at[11:23],
                    "agent": _agent(subject),
                    "action": e.get("action", ""),
                    "resource": f"{resource.get('type')}::{resource.get('id')}",
                    "decision": e.get("decision", ""),
                    "reasons": "; ".join(
                        f"{r.get('policy')}: {r.get('reason', '')}" for r in e.get("reasons") or []
                    ),
                    "risk": score,
                }
            )
        elif e.get("kind") in ("identity", "response", "console", "trust", "sandbox"):
            what = e.get("event") or e.get("action") or e.get("type") or e.get("kind")
            timeline.append({"at": at[11:23], "what": f"{e.get('kind')}: {what} {_brief(e)}"})
    start, end = (min(times), max(times)) if times else (0.0, 1.0)
    charts = [(agent, _chart(points, start, end)) for agent, points in sorted(risk.items())]
    env = Environment(autoescape=select_autoescape(default=True))
    html = env.from_string(TEMPLATE.read_text()).render(
        played=played,
        verified=verified,
        decisions=decisions,
        timeline=timeline[:400],
        charts=charts,
        started=entries[0].get("at", "") if entries else "",
    )
    path.write_text(html)


def _brief(entry: dict[str, Any]) -> str:
    """A few words of an event: who it is about and what changed."""
    keep = {k: entry[k] for k in ("agent", "name", "status", "playbook", "to") if k in entry}
    return json.dumps(keep)[:160] if keep else ""
