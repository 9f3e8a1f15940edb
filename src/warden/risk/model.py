"""The online anomaly model: river's Half-Space Trees over how far each request is from its
own agent's baseline.

One model serves every agent: its features are deviations already normalised by the agent's
baseline (this minute's rate against its usual peak, records against its usual most, a new
target or network, how rare the hour is, recent denials, records sent out), each squashed into
[0, 1) as Half-Space Trees want. So the model learns what "unusual for an agent" looks like
across the population, in constant memory however many agents there are.

It raises the score by at most 150 points, which alone never reaches "high" (600), and names
the features that moved. It learns from one request in four (fast enough to follow the
population, cheap enough for the request path), and says nothing until it has seen enough.
"""

from __future__ import annotations

from river.anomaly import HalfSpaceTrees

from warden.risk.baseline import Running
from warden.risk.detectors import Factor

FEATURES = ("rate", "records", "volume", "new_target", "new_network", "hour", "denials", "sent")
WORDS = {
    "rate": "request rate",
    "records": "records per answer",
    "volume": "records in ten minutes",
    "new_target": "a new target",
    "new_network": "a new network",
    "hour": "the hour",
    "denials": "denials",
    "sent": "records sent out",
}
MAX_POINTS = 150
WARMUP = 2_000  # requests learned before the model's opinion counts
LEARN_EVERY = 4


def squash(x: float) -> float:
    """[0, inf) -> [0, 1): x / (1 + x)."""
    return x / (1.0 + x) if x > 0 else 0.0


class AnomalyModel:
    def __init__(self, seed: int = 7) -> None:
        self._model = HalfSpaceTrees(n_trees=6, height=6, window_size=256, seed=seed)
        self._seen = 0
        self._scores = Running()

    def assess(self, features: dict[str, float]) -> Factor | None:
        """Score one request's features (and learn from some): a factor when it is unusual."""
        score = float(self._model.score_one(features))  # type: ignore[no-untyped-call]
        self._seen += 1
        if self._seen % LEARN_EVERY == 0:
            self._model.learn_one(features)  # type: ignore[no-untyped-call]
        usual = self._scores
        bound = usual.mean + 4 * usual.std
        usual.add(score, 0.001)
        if self._seen < WARMUP or score <= bound or bound >= 1.0:
            return None
        points = max(30, round(MAX_POINTS * min(1.0, (score - bound) / (1.0 - bound))))
        moved = sorted(features, key=lambda k: -features[k])[:2]
        words = "unusual for this agent: " + " and ".join(WORDS[m] for m in moved if features[m])
        return Factor("anomaly", points, words, named=False)
