"""An agent's risk: the factors its detectors raised, each fading with time, summed into a
score from 0 to 1000, with the factors that make it up in plain words."""

from __future__ import annotations

from dataclasses import dataclass, field

from warden.risk.detectors import Factor

HALF_LIFE_S = 600.0  # a factor's points halve every ten minutes
FORGOTTEN = 5.0  # points below which a factor is dropped
MAX_SCORE = 1000


@dataclass
class RiskState:
    """The factors raised against one agent: code -> (factor, when)."""

    factors: dict[str, tuple[Factor, float]] = field(default_factory=dict)

    def raise_factor(self, factor: Factor, at: float) -> None:
        """The factor, unless the same one raised earlier still counts for more."""
        current = self.factors.get(factor.code)
        if current is None or factor.points >= _left(current, at):
            self.factors[factor.code] = (factor, at)

    def contributions(self, now: float) -> list[tuple[Factor, int]]:
        """The factors with the points they give now, largest first."""
        out = []
        for code, held in list(self.factors.items()):
            points = _left(held, now)
            if points < FORGOTTEN:
                del self.factors[code]
                continue
            out.append((held[0], round(points)))
        out.sort(key=lambda c: -c[1])
        return out

    def score(self, now: float) -> int:
        return min(MAX_SCORE, sum(p for _, p in self.contributions(now)))


def _left(held: tuple[Factor, float], now: float) -> float:
    factor, at = held
    return float(factor.points * 0.5 ** (max(0.0, now - at) / HALF_LIFE_S))


def would_contain(contributions: list[tuple[Factor, int]]) -> str | None:
    """What the default playbooks act on: a critical score (800 or more) that a named
    detector agrees with (one giving 300 points or more). The anomaly model alone never
    contains an agent. Returns the reason, in plain words, or None."""
    total = min(MAX_SCORE, sum(p for _, p in contributions))
    named = [f for f, p in contributions if f.named and p >= 300]
    if total < 800 or not named:
        return None
    return f"risk {total}: " + "; ".join(f.words for f in named[:3])
