"""A sandbox run: a policy decision first, then an execution, then a record.

The decision is ``code:execute`` on ``Tool::"sandbox/python"`` with the code's SHA-256, its
size, the number of input files, the backend and the limits asked for in the context, so a
policy can bound what each agent may run. It is recorded (durably) before anything runs;
the run's record (code digest, limits, exit status, resource use, output sizes and a bounded
excerpt) follows, tied to the decision id. No backend, no run: the request is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.audit.recorder import DecisionRecorder
from warden.errors import UntrustedInputError, WardenError
from warden.identity.authority import IdentityAuthority
from warden.policy.engine import PolicyEngine
from warden.policy.model import Decision, DecisionRequest, Reason, Resource, new_decision_id
from warden.sandbox import bwrap, wasm
from warden.sandbox.bwrap import Execution
from warden.sandbox.limits import Limits

log = logging.getLogger("warden.sandbox")
RESOURCE = Resource(
    "Tool", "sandbox/python", {"domain": "platform", "classification": "internal", "tags": []}
)
EXCERPT = 2048  # bytes of stdout and stderr kept in the record
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SandboxUnavailable(WardenError):
    code = "sandbox_unavailable"


@dataclass
class RunOutcome:
    decision: Decision
    backend: str
    code_sha256: str
    limits: Limits
    execution: Execution | None = None
    outputs: dict[str, bytes] = field(default_factory=dict)

    def to_dict(self, *, with_output: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision_id": self.decision.decision_id,
            "decision": self.decision.decision,
            "reasons": [r.to_dict() for r in self.decision.reasons],
            "backend": self.backend,
            "code_sha256": self.code_sha256,
            "limits": self.limits.to_dict(),
        }
        run = self.execution
        if run is not None:
            out.update(
                {
                    "exit_code": run.exit_code,
                    "signal": run.signal,
                    "ended": run.reason,
                    "wall_ms": round(run.wall_ms, 1),
                    "cpu_ms": round(run.cpu_ms, 1),
                    "max_rss_kb": run.max_rss_kb,
                    "stdout_bytes": run.stdout_bytes,
                    "stderr_bytes": run.stderr_bytes,
                }
            )
            if with_output:
                out["stdout"] = run.stdout.decode(errors="replace")
                out["stderr"] = run.stderr.decode(errors="replace")
                out["files"] = {n: d.decode(errors="replace") for n, d in run.outputs.items()}
        return out


def sandbox_root(authority: IdentityAuthority) -> Path:
    configured = authority.settings.sandbox_dir
    root = configured or Path(tempfile.gettempdir()) / f"warden-sandbox-{os.geteuid()}"
    root.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = root.lstat()
    # A shared temporary directory: refuse one someone else made, or a link to elsewhere.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SandboxUnavailable(f"{root} is not a directory of Warden's own user")
    os.chmod(root, 0o711)  # noqa: S103  (runs' uids traverse it; nobody lists it)
    for parent in root.resolve().parents:  # each run's uid must reach its work directory
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise SandboxUnavailable(f"{parent} is not traversable: runs could not reach {root}")
    return root


def backends() -> dict[str, str | None]:
    """Each backend, and why it cannot run here (None: it can)."""
    return {"bwrap": bwrap.available(), "wasm": wasm.available()}


def choose_backend(preference: str, asked: str | None = None) -> str:
    found = backends()
    wanted = asked or preference
    if wanted == "none":
        raise SandboxUnavailable("the sandbox is switched off (sandbox_backend = none)")
    if wanted == "auto":
        for name in ("bwrap", "wasm"):
            if found[name] is None:
                return name
        raise SandboxUnavailable(
            "no sandbox backend works here: " + "; ".join(f"{k}: {v}" for k, v in found.items())
        )
    if wanted not in found:
        raise UntrustedInputError(f"unknown backend {wanted!r}", code="invalid_backend")
    why = found[wanted]
    if why is not None:
        raise SandboxUnavailable(f"{wanted} cannot run here: {why}")
    return wanted


class Sandbox:
    """Runs code for agents; one per process (the control plane, the CLI)."""

    def __init__(
        self, authority: IdentityAuthority, engine: PolicyEngine, recorder: DecisionRecorder
    ) -> None:
        self.authority = authority
        self.engine = engine
        self.recorder = recorder
        self.enforcement_point = f"spiffe://{authority.trust_domain}/svc/sandbox"

    def run(
        self,
        subject: str,
        code: bytes,
        *,
        files: dict[str, bytes] | None = None,
        limits: Limits | None = None,
        backend: str | None = None,
        authn: str = "mtls",
    ) -> RunOutcome:
        """Decide, run, record. Bad input raises :class:`UntrustedInputError` before any of
        it; a missing backend raises :class:`SandboxUnavailable` (nothing runs)."""
        settings = self.authority.settings
        files = dict(files or {})
        limits = limits or Limits()
        self._check(code, files)
        chosen = choose_backend(settings.sandbox_backend, backend)
        digest = hashlib.sha256(code).hexdigest()
        request = DecisionRequest(
            "Agent",
            subject,
            "code:execute",
            RESOURCE,
            {
                "authn": authn,
                "sandbox": {
                    "code_sha256": digest,
                    "code_bytes": len(code),
                    "files": len(files),
                    "backend": chosen,
                    "cpu_s": limits.cpu_s,
                    "wall_s": limits.wall_s,
                    "memory_mb": limits.memory_mb,
                    "file_mb": limits.file_mb,
                    "processes": limits.processes,
                },
            },
        )
        try:
            decision = self.engine.reserve(self.engine.decide(request))
        except WardenError as exc:  # fail closed
            decision = _deny(exc.code, exc.message)
        self.recorder.record(decision, request, enforcement_point=self.enforcement_point)
        outcome = RunOutcome(decision, chosen, digest, limits)
        if not decision.allowed:
            return outcome
        root = sandbox_root(self.authority)
        runner = bwrap.run if chosen == "bwrap" else wasm.run
        outcome.execution = runner(root, code, files, limits)
        self._record(subject, outcome)
        return outcome

    def _check(self, code: bytes, files: dict[str, bytes]) -> None:
        settings = self.authority.settings
        if not code:
            raise UntrustedInputError("no code to run", code="invalid_code")
        if len(code) > settings.sandbox_max_code_bytes:
            raise UntrustedInputError(
                f"code is over {settings.sandbox_max_code_bytes} bytes", code="code_too_large"
            )
        if len(files) > settings.sandbox_max_files:
            raise UntrustedInputError(
                f"at most {settings.sandbox_max_files} input files", code="too_many_files"
            )
        for name, data in files.items():
            if not FILE_NAME.fullmatch(name) or name == bwrap.MAIN:
                raise UntrustedInputError(
                    f"input file name {name[:64]!r}: letters, digits, '.', '_', '-', no path",
                    code="invalid_file_name",
                )
            if len(data) > settings.sandbox_max_file_bytes:
                raise UntrustedInputError(
                    f"{name} is over {settings.sandbox_max_file_bytes} bytes", code="file_too_large"
                )

    def _record(self, subject: str, outcome: RunOutcome) -> None:
        run = outcome.execution
        assert run is not None
        body = outcome.to_dict(with_output=False)
        body.pop("reasons", None)
        body.update(
            {
                "event": "sandbox_run",
                "agent": subject,
                "stdout_excerpt": run.stdout[:EXCERPT].decode(errors="replace"),
                "stderr_excerpt": run.stderr[:EXCERPT].decode(errors="replace"),
                "files_out": {n: len(d) for n, d in run.outputs.items()},
                "wall_ms": round(run.wall_ms),
                "cpu_ms": round(run.cpu_ms),
            }
        )
        try:
            self.recorder.append("sandbox", body, subject=subject)
        except Exception as exc:  # the run happened; its record is what failed: say so
            log.error("sandbox run of %s not recorded: %s", subject, exc)


def _deny(code: str, message: str) -> Decision:
    from warden.clock import utcnow

    return Decision(
        decision_id=new_decision_id(),
        decision="deny",
        reasons=(Reason(code, "forbid", message[:500]),),
        obligations=(),
        risk={},
        policy_revision="",
        work_order=None,
        at=utcnow(),
    )
