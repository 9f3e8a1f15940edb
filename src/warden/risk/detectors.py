"""Named detectors: each compares one observation with the agent's baseline and, when the
agent acts out of character, gives a factor: points towards the risk score and what happened,
in plain words.

They read the baseline as it was before the observation (what was normal until now); the
engine then learns from the observation. Novelty detectors (a new network, target, data
class, argument) wait for the agent's learning period: before it, everything is new.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from warden.risk.baseline import ALPHA, Baseline, Running
from warden.risk.observation import DESTINATION_ARGS, OWNER_ARGS, PAYMENT_ARGS, Observation

# Policies and refusals that mean "a limit on data was hit", not "a mistake".
LIMIT_REASONS = ("phi-five-per-minute", "dlp_window_exceeded", "throttled", "too_many_concurrent")
# Policies that deny because of the risk score itself; their denials must not raise it again.
RISK_POLICIES = frozenset({"high-risk-no-sensitive", "sensitive-needs-known-state"})
SENSITIVE = frozenset({"pii", "phi", "pci"})
CLASS_POINTS = {"pci": 300, "phi": 250, "pii": 150, "confidential": 150}


@dataclass(frozen=True, slots=True)
class Factor:
    """Points towards the score, and why. ``named``: a detector (an auditor can read what it
    checks); False for the anomaly model's opinion."""

    code: str
    points: int
    words: str
    named: bool = True


Fingerprint = Callable[[bytes], str]


def assess(
    baseline: Baseline,
    obs: Observation,
    hour: int,
    learned: bool,
    fingerprint: Fingerprint,
) -> list[Factor]:
    """The factors ``obs`` raises against ``baseline``."""
    found: list[Factor] = []
    recent = baseline.recent
    recent.prune(obs.at)
    network = obs.network
    if learned:
        _novelty(baseline, obs, network, found)
        _hours(baseline, hour, found)
    _rate(baseline, obs, hour, found)
    _volume(baseline, obs, hour, found)
    _denials(baseline, obs, found)
    _payments(baseline, obs, learned, fingerprint, found)
    if learned:
        _outbound(baseline, obs, fingerprint, found)
    return found


def _novelty(b: Baseline, obs: Observation, network: str, found: list[Factor]) -> None:
    if network and network not in b.networks:
        found.append(Factor("new_network", 350, f"a request from {network}, never seen"))
        others = b.recent.networks(obs.at) - {network}
        if others:
            found.append(
                Factor(
                    "concurrent_networks",
                    300,
                    f"used from {network} and {sorted(others)[0]} within a minute",
                )
            )
    if obs.target not in b.targets:
        if obs.work_order:
            found.append(Factor("new_target", 0, f"first use of {obs.target}, under work order"))
        else:
            found.append(Factor("new_target", 200, f"first use of {obs.target}"))
    for data_class in obs.classes:
        if data_class in CLASS_POINTS and data_class not in b.classes and not obs.work_order:
            found.append(
                Factor(
                    f"first_{data_class}",
                    CLASS_POINTS[data_class],
                    f"first access to {data_class.upper()} data",
                )
            )
    if obs.target in b.targets:  # a known target called in a new way
        new = [n for n in obs.args if f"{obs.target}|{n}" not in b.arg_names]
        if new and not obs.work_order:
            found.append(
                Factor("new_arguments", 150, f"{obs.target} called with {', '.join(sorted(new))}")
            )


def _hours(b: Baseline, hour: int, found: list[Factor]) -> None:
    if b.hour_share(hour) < 0.005:
        found.append(Factor("off_hours", 120, f"active at {hour:02d}:00, when it never is"))


def _rate(b: Baseline, obs: Observation, hour: int, found: list[Factor]) -> None:
    count = b.recent.last_minute(obs.at) + 1
    usual = b.rate[hour] if b.rate[hour].n >= 30 else _overall(b)
    if usual.n < 30:
        return
    bound = max(usual.mean + 3 * usual.std, 1.0)
    ratio = count / bound
    # The last ten seconds at the same pace for a minute: a scraper is seen in seconds.
    burst = b.recent.in_burst(obs.at) + 1
    if burst >= 20 and burst * 6 / bound > ratio:
        ratio = burst * 6 / bound
        what = f"{burst} requests in ten seconds"
    else:
        what = f"{count} requests in a minute"
    if count >= 10 and ratio >= 3:
        points = 150 if ratio < 6 else 300 if ratio < 12 else 450 if ratio < 20 else 600
        found.append(
            Factor("rate_spike", points, f"{what}, {ratio:.0f}x its usual peak ({bound:.1f})")
        )


def _overall(b: Baseline) -> Running:
    """The busiest hour's statistics, for an hour not seen often enough to have its own."""
    return max(b.rate, key=lambda r: r.n)


def _volume(b: Baseline, obs: Observation, hour: int, found: list[Factor]) -> None:
    """Records in one answer far above the usual; records in the last ten minutes far above
    the usual (slow exfiltration stays under per-minute limits, not under this)."""
    if obs.records and b.records.n >= 30:
        usual = math.expm1(b.records.mean + 3 * b.records.std)
        ratio = obs.records / max(usual, 1.0)
        if obs.records >= 50 and ratio >= 5:
            points = 350 if ratio < 20 else 450
            found.append(
                Factor(
                    "records_spike",
                    points,
                    f"{obs.records} records in one answer, {ratio:.0f}x its usual most",
                )
            )
    sensitive = sensitive_records(obs)
    held = b.recent.sensitive() + sensitive
    z = sensitive_z(b, held, hour)
    if sensitive and far_above(b, held, z):
        points = 300 if z < 3.5 else 400 if z < 4 else 500 if z < 5 else 600
        found.append(
            Factor(
                "sensitive_volume",
                points,
                f"{held} sensitive records in ten minutes, {z:.1f} deviations above its usual",
            )
        )
        lasted = obs.at - b.sensitive_high_since if b.sensitive_high_since else 0.0
        if lasted >= 120:
            found.append(
                Factor(
                    "sensitive_sustained",
                    200 if lasted < 240 else 350,
                    f"far more sensitive records than usual for {lasted / 60:.0f} minutes",
                )
            )
    window = b.recent.records() + obs.records
    if obs.records and b.volume.n >= 30 and window >= 20:
        usual = math.expm1(b.volume.mean + 3 * b.volume.std)
        ratio = window / max(usual, 2.0)
        if ratio >= 3:
            points = 300 if ratio < 5 else 450 if ratio < 8 else 600
            found.append(
                Factor(
                    "volume_spike",
                    points,
                    f"{window} records in ten minutes, {ratio:.0f}x its usual most",
                )
            )


def sensitive_z(b: Baseline, held: int, hour: int) -> float:
    """How many deviations ``held`` sensitive records in ten minutes are above the usual at
    this hour (over the whole day while this hour has too little history; 0 until there is
    any). The deviation has a floor: a steady agent's tiny variance must not make a record or
    two an alarm."""
    stat = b.sensitive[hour]
    if stat.n < 30:
        stat = b.sensitive_all
    if stat.n < 30:
        return 0.0
    return (math.log1p(held) - stat.mean) / max(stat.std, 0.25)


def far_above(b: Baseline, held: int, z: float) -> bool:
    """Sensitive records in ten minutes far above the usual: three deviations out, and at
    least three times the typical count (a bursty agent's busy ten minutes is the first
    without the second)."""
    return held >= 20 and z >= 3 and held >= 3 * math.expm1(b.sensitive_all.mean)


def sensitive_records(obs: Observation) -> int:
    """The records of an answer that carried PII, PHI or PCI."""
    return obs.records if SENSITIVE.intersection(obs.classes) else 0


def _denials(b: Baseline, obs: Observation, found: list[Factor]) -> None:
    if obs.outcome == "allow":
        return
    if any(obs.reason.startswith(r) for r in LIMIT_REASONS):
        found.append(Factor("limit_hit", 300, f"stopped by a data limit ({obs.reason})"))
    if obs.reason in RISK_POLICIES or "risk" in obs.reason:
        return  # denied because its risk is already high: a consequence, not new evidence
    denials = b.recent.denials(obs.at) + 1
    expected = (b.denied.mean if b.denied.n >= 30 else 0.0) * (b.recent.count(obs.at) + 1)
    if denials >= max(2.0, 5 * expected + 1):
        points = 200 if denials == 2 else 300 if denials < 5 else 450
        found.append(Factor("denial_burst", points, f"{denials} requests denied in two minutes"))


def _payments(
    b: Baseline, obs: Observation, learned: bool, fingerprint: Fingerprint, found: list[Factor]
) -> None:
    """A payment detail (routing number, IBAN...) that changes for the same owner."""
    owner = next((str(obs.args[k]) for k in OWNER_ARGS if k in obs.args), "")
    for name in PAYMENT_ARGS.intersection(obs.args):
        key = f"{obs.target}|{name}|{owner}"
        known = b.payments.get(key)
        value = fingerprint(str(obs.args[name]).encode())
        if known and value not in known and not obs.work_order:
            whose = f" of {owner}" if owner else ""
            found.append(Factor("payment_change", 650, f"{name}{whose} changed"))


def _outbound(b: Baseline, obs: Observation, fingerprint: Fingerprint, found: list[Factor]) -> None:
    """A destination never used, and more records sent out than ever."""
    for name in DESTINATION_ARGS.intersection(obs.args):
        key = f"{obs.target}|{name}"
        known = b.destinations.get(key)
        if known and fingerprint(str(obs.args[name]).encode()) not in known:
            found.append(
                Factor("new_destination", 250, f"{name} {str(obs.args[name])[:64]!r}, never used")
            )
    if obs.outbound_records and b.outbound.n >= 20:
        usual = math.expm1(b.outbound.mean + 3 * b.outbound.std)
        if obs.outbound_records >= 10 and obs.outbound_records >= 5 * max(usual, 1.0):
            sensitive = (
                f", {obs.outbound_sensitive} of them sensitive" if obs.outbound_sensitive else ""
            )
            found.append(
                Factor(
                    "outbound_spike",
                    400,
                    f"{obs.outbound_records} records sent out{sensitive}",
                )
            )


def learn(b: Baseline, obs: Observation, hour: int, fingerprint: Fingerprint) -> None:
    """Take ``obs`` into the baseline."""
    recent = b.recent
    network = obs.network
    # The rate is taken in every ten seconds at most, and slowly when far above the usual:
    # sampled at every request, a scraper's ramp would teach its own pace in a minute.
    if obs.at - b.rate_sampled_at >= 10:
        b.rate_sampled_at = obs.at
        stat, count = b.rate[hour], recent.last_minute(obs.at) + 1
        far = stat.n >= 30 and count > 3 * max(stat.mean + 3 * stat.std, 1.0)
        stat.add(count, alpha=ALPHA / 20 if far else ALPHA)
    b.hours[hour] += 1.0
    if b.hours[hour] > 50_000:  # keep the histogram a recent one
        b.hours = [h / 2 for h in b.hours]
        b.events_in_hours = 0.0
    b.events_in_hours = b.events_in_hours + 1.0 if b.events_in_hours else sum(b.hours)
    b.count(b.targets, obs.target)
    b.count(b.methods, obs.action)
    if network:
        b.count(b.networks, network)
    for data_class in obs.classes:
        b.count(b.classes, data_class)
    for name in obs.args:
        b.count(b.arg_names, f"{obs.target}|{name}")
    owner = next((str(obs.args[k]) for k in OWNER_ARGS if k in obs.args), "")
    for name in PAYMENT_ARGS.intersection(obs.args):
        b.remember(
            b.payments, f"{obs.target}|{name}|{owner}", fingerprint(str(obs.args[name]).encode())
        )
    for name in DESTINATION_ARGS.intersection(obs.args):
        b.remember(
            b.destinations, f"{obs.target}|{name}", fingerprint(str(obs.args[name]).encode())
        )
    sensitive = sensitive_records(obs)
    if obs.records:
        b.records.add(math.log1p(obs.records))
    # Ten-minute sums are taken in once a minute at most, and slowly while far above the
    # usual: sampled at every request, a burst would teach that bursts are normal.
    if obs.at - b.windows_sampled_at >= 60:
        b.windows_sampled_at = obs.at
        if obs.records:
            b.volume.add(math.log1p(recent.records() + obs.records), edge_sds=3.0)
        if sensitive:
            held = recent.sensitive() + sensitive
            value = math.log1p(held)
            if sensitive_z(b, held, hour) >= 2:  # out of the usual: the day's figure, slowly
                b.sensitive_all.add(value, alpha=ALPHA / 20, edge_sds=3.0)
            else:
                b.sensitive[hour].add(value, edge_sds=3.0)
                b.sensitive_all.add(value, edge_sds=3.0)
    if sensitive:
        held = recent.sensitive() + sensitive
        z = sensitive_z(b, held, hour)
        if far_above(b, held, z):
            b.sensitive_high_since = b.sensitive_high_since or obs.at
        elif z < 2.5:
            b.sensitive_high_since = 0.0
    b.outbound.add(math.log1p(obs.outbound_records))
    b.denied.add(0.0 if obs.outcome == "allow" else 1.0)
    recent.add(obs.at, obs.records, obs.outcome != "allow", network, sensitive)
    b.events += 1
    b.last_at = obs.at
