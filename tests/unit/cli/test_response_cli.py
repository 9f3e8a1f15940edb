"""``warden playbook|incident|approval`` on a real state directory (in process)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.test_cli import state, warden  # noqa: F401  (the fixture)
from warden.audit.setup import open_decision_log
from warden.config import load_settings
from warden.identity.authority import open_authority


def test_a_playbook_run_by_hand_leaves_an_incident_to_resolve(state: Path) -> None:  # noqa: F811
    assert warden(state, "agent", "register", "bot", "--owner", "ops")[0] == 0
    code, output = warden(
        state, "playbook", "trigger", "high-risk-contain", "--agent", "bot", "--reason", "drill",
        "--json",
    )  # fmt: skip
    assert code == 0, output
    run = json.loads(output)
    assert [s["outcome"] for s in run["steps"]] == ["done", "done", "done", "not_configured"]
    assert run["status"] == "incomplete"  # the webhook is not configured here
    code, output = warden(state, "agent", "show", "bot")
    assert "quarantined" in output
    code, output = warden(state, "incident", "list", "--json")
    (incident,) = json.loads(output)["incidents"]
    code, output = warden(state, "incident", "show", incident["id"])
    assert json.loads(output)["events"][0]["kind"] == "manual"
    code, output = warden(state, "incident", "resolve", incident["id"])
    assert code != 0 and "resolution" in output  # it must say how
    code, output = warden(state, "incident", "resolve", incident["id"], "--resolution", "drill")
    assert code == 0, output
    code, output = warden(state, "incident", "resolve", incident["id"], "--resolution", "again")
    assert code == 1 and "resolved already" in output
    code, output = warden(state, "playbook", "runs", "--json")
    assert json.loads(output)["runs"][0]["trigger"]["by"] == "cli"
    code, output = warden(state, "playbook", "trigger", "nope", "--agent", "bot", "--reason", "x")
    assert code == 1 and "no active playbook" in output


def test_check_names_what_is_wrong(state: Path, tmp_path: Path) -> None:  # noqa: F811
    code, output = warden(state, "playbook", "check")
    assert code == 0 and "valid" in output and "not configured" in output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.yaml").write_text("name: b\nversion: 1\n")
    (bad / "x.yaml").write_text("name: x\ntrigger: {manual: {}}\nactions: [{rm: {}}]\n")
    code, output = warden(state, "playbook", "check", str(bad))
    assert code == 1 and "x.yaml" in output and "unknown action" in output


def test_dry_run_replays_what_the_log_recorded(state: Path) -> None:  # noqa: F811
    assert warden(state, "agent", "register", "nurse", "--owner", "ops")[0] == 0
    authority = open_authority(load_settings(state_dir=state))
    spiffe_id = authority.agents.get("nurse").spiffe_id
    log = open_decision_log(authority)
    for _ in range(2):  # twice: the second is within the playbook's cooldown
        event = {"event": "dlp_window_exceeded", "agent": spiffe_id, "classes": ["phi"]}
        log.append("trust", event)
    log.close()
    code, output = warden(state, "playbook", "dry-run", "--json")
    assert code == 0, output
    found = json.loads(output)
    would = [(w["agent"], w["playbook"], w["would_run"], w["why_not"]) for w in found["would"]]
    assert would == [
        ("nurse", "phi-exfiltration", True, ""),
        ("nurse", "phi-exfiltration", False, "within its cooldown"),
    ]
    assert found["not_replayed"] == ["payment-destination-change"]
    assert authority.agents.get("nurse").containment == {}  # nothing was done
    code, output = warden(state, "approval", "list", "--json")
    assert json.loads(output) == {"approvals": []}
