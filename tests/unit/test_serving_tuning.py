"""What a server process sets before it serves (in a child process, so the test run's own
collector and switch interval are left alone)."""

from __future__ import annotations

import json
import subprocess
import sys

from warden.transport.loop import GC_YOUNG_THRESHOLD, SWITCH_INTERVAL_S

PROBE = """
import gc, json, sys
before = {"interval": sys.getswitchinterval(), "young": gc.get_threshold()[0]}
from warden.transport.loop import tune_for_serving
tune_for_serving()
print(json.dumps({"before": before, "interval": sys.getswitchinterval(),
                  "young": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}))
"""


def test_a_server_collects_less_often_and_shares_the_interpreter_promptly() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(out.stdout)
    assert seen["before"] == {"interval": 0.005, "young": 700}  # CPython's defaults
    assert seen["interval"] == SWITCH_INTERVAL_S
    assert seen["young"] == GC_YOUNG_THRESHOLD
    assert seen["frozen"] > 0  # what start-up allocated is out of the collector's sight
