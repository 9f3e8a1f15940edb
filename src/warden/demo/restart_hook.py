"""The demo's re-provisioning hook, as an operator would write one: start the fresh instance
Warden registered (``WARDEN_AGENT``) through the launcher attestor (``warden run``) and return
at once. The instance makes one ordinary request; its answers go next to ``URLS``.

``python -m warden.demo.restart_hook URLS.json`` (``{"control": URL, "gateway": URL}``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main(urls_path: str) -> int:
    urls = json.loads(Path(urls_path).read_text())
    agent = os.environ["WARDEN_AGENT"]
    out_dir = Path(urls_path).parent
    plan = out_dir / f"{agent}.plan.json"
    plan.write_text(
        json.dumps(
            {
                "gateway": urls["gateway"],
                "steps": [{"label": "fresh", "method": "GET", "path": "/finance/invoices?limit=1"}],
            }
        )
    )
    warden = str(Path(sys.executable).parent / "warden")
    with (out_dir / f"{agent}.jsonl").open("wb") as answers:
        subprocess.Popen(
            [
                warden, "--state-dir", os.environ["WARDEN_STATE_DIR"], "run", "--agent", agent,
                "--operator", "admin", "--server", urls["control"], "--",
                sys.executable, "-m", "warden.demo.agent", str(plan),
            ],
            start_new_session=True,
            stdout=answers,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
