"""Detection: days of a simulated agent population played through the real decide(), data
protection and risk engine, with the seed's attacks and others injected on the second day.

The traces are fixed (``warden.sim.traces.build`` with a fixed seed): finance reconciliation,
invoice, fraud detection, healthcare records, retail inventory and pricing agents with daily
rhythms and noise, four of them changing how they work for good reasons. Every request is
scored as the gateway scores it; each decide() is timed on the live engine and, in the same
step, on an engine with the same bundle and signals but no risk context.

  python benchmarks/detection.py            # 8 agents per role, 4 days (about 300,000 steps)
  python benchmarks/detection.py --quick    # 3 agents per role, 2 days (about 60,000 steps)
"""

from __future__ import annotations

from typing import Any

from _common import parse_args, pin_to_one_core, report
from warden.sim.run import simulate
from warden.sim.traces import ATTACKS, SEED_ATTACKS, build


def main() -> None:
    args = parse_args(__doc__ or "")
    per_role, days = (3, 2.0) if args.quick else (8, 4.0)
    core = pin_to_one_core()
    trace = build(per_role=per_role, days=days)
    results = simulate(trace)
    figures: dict[str, Any] = results.figures()
    figures["agents"] = len(trace.agents)
    for name, attack in results.attacks.items():
        figures[f"requests_to_detect_{name}"] = attack.detected_after or -1
    rows = [
        ("seed attacks detected", figures["seed_attacks_detected"] * 100, "%", "100"),
        ("all attacks detected", figures["attacks_detected"] * 100, "%", ""),
        ("median requests to detect", figures["median_requests_to_detect"], "", "<= 5"),
        ("median seconds to detect", figures["median_seconds_to_detect"], "s", ""),
        ("false positives (benign agent-hours)", figures["false_positive_rate"] * 100, "%", "<= 1"),
        (
            "wrongful containment (benign agent-hours)",
            figures["wrongful_containment_rate"] * 100,
            "%",
            "<= 0.01",
        ),
        ("benign agent-hours", figures["benign_agent_hours"], "", ""),
        ("risk scoring p50", figures["score_p50_us"], "us", "<= 50"),
        ("decide() with risk p50", figures["decide_p50_us"], "us", ""),
        ("decide() without risk p50", figures["decide_p50_us_without_risk"], "us", ""),
        ("decide() with / without risk", figures["decide_ratio_with_risk"], "x", "<= 1.2"),
        ("steps played per second", figures["steps_per_s"], "/s", ""),
    ]
    for name, attack in results.attacks.items():
        seed = " (seed)" if name in SEED_ATTACKS else ""
        caught = attack.detected_after
        rows.append(
            (
                f"{name}{seed} on {ATTACKS[name]}",
                float(caught if caught is not None else -1),
                f"req, {attack.seconds:.0f} s" if attack.seconds is not None else "missed",
                "<= 10 min" if name == "slow_exfiltration" else "",
            )
        )
    title = f"Detection ({'quick, ' if args.quick else ''}{len(trace.steps):,} steps, {core})"
    report(title, rows, figures, args.json)
    for name, attack in results.attacks.items():
        why = "; ".join(f"{w} ({p})" for w, p in attack.factors[:3]) or "-"
        print(f"  {name}: {why}")


if __name__ == "__main__":
    main()
