"""`warden demo` runs as a new user would run it, in its own process."""

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    warden = Path(sys.executable).parent / "warden"
    result = subprocess.run(
        [str(warden), "demo", "--keep", str(tmp_path / "demo")],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "spiffe://demo.example/agent/invoice-bot" in out
    assert "no_client_certificate" in out and "forbidden" in out
    assert "X.509-SVID: rejected (principal_revoked)" in out
    assert "old SVID still verifies" in out
    assert "got spiffe://demo.example/agent/claims-bot" in out.replace("\n", "")
    assert "refused: no identity issued" in out
    flat = " ".join(out.split())
    assert "read payroll deny by payroll-only-hr" in flat
    assert "export 100 customers to a paste site deny by customer-export-needs-work-order" in flat
    assert "allow by finance-agents-use-finance-apis (work order wo-" in flat
    assert "export 100 customers again deny by customer-export-needs-work-order" in flat
    assert "unexpected" not in out
