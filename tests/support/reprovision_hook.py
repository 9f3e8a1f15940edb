"""A re-provisioning hook as an operator would write one: start a fresh instance of the agent
under the new identity Warden registered, through the launcher attestor (`warden run`), and
return at once. Warden passes what it needs in WARDEN_* variables.

  reprovision_hook.py CONTROL_PLANE_URL GATEWAY_URL RESULT_FILE
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

AGENT = """
import json, sys
from warden.sdk import AgentIdentity
with AgentIdentity() as identity:
    with identity.http_client(sys.argv[1], timeout=10) as client:
        answer = client.get("/ledger/invoices")
    with open(sys.argv[2], "w") as out:
        json.dump({"spiffe_id": identity.spiffe_id, "status": answer.status_code}, out)
"""


def main() -> None:
    plane, gateway, result = sys.argv[1:4]
    env = os.environ
    Path(result + ".hook").write_text(
        "\n".join(
            f"{k}={env.get(k, '')}"
            for k in ("WARDEN_AGENT", "WARDEN_PREVIOUS_AGENT", "WARDEN_PLAYBOOK", "WARDEN_RUN")
        )
    )
    warden = str(Path(sys.executable).parent / "warden")
    subprocess.Popen(
        [
            warden, "--state-dir", env["WARDEN_STATE_DIR"], "run", "--agent", env["WARDEN_AGENT"],
            "--operator", "admin", "--server", plane, "--",
            sys.executable, "-c", AGENT, gateway, result,
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(result + ".err", "w"),  # noqa: SIM115  (the child keeps it)
    )  # fmt: skip


if __name__ == "__main__":
    main()
