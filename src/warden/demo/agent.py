"""A demo agent: a separate process started with ``warden run``, which gets its SVID from the
Workload API (``SPIFFE_ENDPOINT_SOCKET``), calls only through the gateway, and prints one JSON
line per request (status, decision id, reason) for the demo to read.

``python -m warden.demo.agent PLAN.json``; the plan: ``{"gateway": URL, "steps": [{"label",
"method", "path", "json", "count", "every_s", "source"}]}``. ``source`` is a loopback address
the requests leave from (a "new address" the agent never used); ``base: control`` sends a
step to the control plane instead (a sandbox run); ``keep_body`` prints the JSON answer.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from warden.sdk import AgentIdentity


def _answer(response: httpx.Response, keep_body: bool = False) -> dict[str, Any]:
    reason = ""
    kept: Any = None
    decision = response.headers.get("x-warden-decision-id", "")
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict):
            reason = str(body.get("reason") or body.get("error") or "")
            decision = decision or str(body.get("decision_id") or "")
            kept = body if keep_body else None
    out = {"status": response.status_code, "decision_id": decision, "reason": reason}
    if kept is not None:
        out["body"] = kept
    return out


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    with AgentIdentity() as me:
        print(json.dumps({"identity": me.spiffe_id}), flush=True)
        clients: dict[tuple[str, str], httpx.Client] = {}
        try:
            for step in plan["steps"]:
                source = step.get("source", "127.0.0.1")
                # The gateway, or for the sandbox the control plane (a run is decided there).
                base = plan[step.get("base", "gateway")]
                if (source, base) not in clients:
                    transport = httpx.HTTPTransport(verify=me.ssl_context(), local_address=source)
                    clients[(source, base)] = httpx.Client(
                        base_url=base, transport=transport, timeout=60
                    )
                client = clients[(source, base)]
                for i in range(int(step.get("count", 1))):
                    started = time.monotonic()
                    try:
                        response = client.request(
                            step.get("method", "GET"), step["path"], json=step.get("json")
                        )
                        out = _answer(response, bool(step.get("keep_body")))
                    except httpx.HTTPError as exc:  # refused at the TLS layer: revoked, say
                        out = {"status": 0, "decision_id": "", "reason": type(exc).__name__}
                    out.update(label=step["label"], i=i, at=time.time())
                    out["ms"] = round((time.monotonic() - started) * 1000, 2)
                    print(json.dumps(out), flush=True)
                    if step.get("every_s"):
                        time.sleep(float(step["every_s"]))
        finally:
            for client in clients.values():
                client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
