"""Shared helpers of the benchmark scripts: arguments, timing, the table, the JSON file."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def parse_args(
    description: str, extra: list[tuple[str, type, Any, str]] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="finish in under a minute")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    for flag, kind, default, text in extra or []:
        parser.add_argument(flag, type=kind, default=default, help=text)
    return parser.parse_args()


def pin_to_one_core() -> str:
    """Pin this process to one CPU so per-core figures mean what they say."""
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "unpinned"


def unpin() -> None:
    """Let this process (and the children it starts from now on) use every CPU again."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def rate(func: Callable[[int], Any], count: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` operations per second of ``func(i)`` over ``count`` calls."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            func(i)
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best


def latencies_us(func: Callable[[int], Any], count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter_ns()
        func(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 10) - 1] if len(samples) > 1 else 0.0


def report(
    title: str,
    rows: list[tuple[str, float, str, str]],
    figures: dict[str, Any],
    json_path: Path | None,
) -> None:
    """Print ``rows`` (figure, value, unit, target) as a table; write ``figures`` as JSON."""
    table = Table(title=title)
    for column in ("figure", "value", "unit", "target"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for name, value, unit, target in rows:
        table.add_row(name, f"{value:,.2f}" if value < 100 else f"{value:,.0f}", unit, target)
    Console().print(table)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
