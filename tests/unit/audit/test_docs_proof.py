"""The procedure docs/audit.md gives for checking a decision without Warden works as written,
and fails for a tampered proof."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.audit import GATEWAY, a_decision, log_key
from warden.audit.checkpoint import verify as open_checkpoint
from warden.audit.reader import LogReader
from warden.audit.setup import open_decision_log
from warden.identity.authority import IdentityAuthority

DOC = Path(__file__).parents[3] / "docs" / "audit.md"


def snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (code,) = [b for b in blocks if "proof.json" in b]
    return code


def test_the_documented_check_works(
    sqlite_authority: IdentityAuthority,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = open_decision_log(sqlite_authority)
    ids = []
    for allow in (True, False, True, True, False):
        decision, request = a_decision(allow=allow)
        log.record(decision, request, enforcement_point=GATEWAY)
        ids.append(decision.decision_id)
    checkpoint = open_checkpoint(log.checkpoint().note, log_key(sqlite_authority))
    log.close()
    proof = LogReader(sqlite_authority.store).prove_decision(ids[1], checkpoint).to_dict()
    proof["verifier_key"] = sqlite_authority.ca.log_keys().verifier_key
    monkeypatch.chdir(tmp_path)
    Path("proof.json").write_text(json.dumps(proof))
    exec(compile(snippet(), str(DOC), "exec"), {})
    assert "deny is on record at position 1" in capsys.readouterr().out
    proof["entry"] = proof["entry"].replace('"deny"', '"allow"')
    Path("proof.json").write_text(json.dumps(proof))
    with pytest.raises(AssertionError):
        exec(compile(snippet(), str(DOC), "exec"), {})
