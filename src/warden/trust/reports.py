"""Vulnerability reports of a workload: CycloneDX (an SBOM with vulnerabilities, or a VEX
document), Grype JSON and Trivy JSON, read to one shape.

What is kept of a report: the tool, the image digests it scanned, and each finding's id,
severity and component. A VEX statement (CycloneDX ``analysis.state``) of ``not_affected``,
``false_positive`` or ``resolved`` takes a finding out of the counts; the statement is kept
with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from warden.errors import UntrustedInputError

SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown")
VEX_CLEARED = frozenset({"not_affected", "false_positive", "resolved", "resolved_with_pedigree"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_FINDINGS = 100_000


class InvalidReport(UntrustedInputError):
    code = "invalid_report"
    public_message = "invalid vulnerability report"


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    component: str = ""


@dataclass
class Report:
    tool: str  # cyclonedx | grype | trivy
    findings: list[Finding] = field(default_factory=list)
    cleared: dict[str, str] = field(default_factory=dict)  # VEX: id -> state
    digests: set[str] = field(default_factory=set)  # image digests the scan names


def parse(data: bytes) -> Report:
    """Any of the supported formats, recognised by its content."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise InvalidReport("a report is JSON (CycloneDX, Grype or Trivy)") from exc
    if not isinstance(document, dict):
        raise InvalidReport("a report is a JSON object")
    if document.get("bomFormat") == "CycloneDX":
        return _cyclonedx(document)
    if isinstance(document.get("matches"), list):
        return _grype(document)
    if ("SchemaVersion" in document and "Results" in document) or "ArtifactName" in document:
        return _trivy(document)
    raise InvalidReport("not a CycloneDX, Grype or Trivy report")


def merge(reports: list[Report]) -> Report:
    """Several reports (a scan and a VEX document, say) as one."""
    merged = Report(tool="+".join(sorted({r.tool for r in reports})))
    seen: set[tuple[str, str]] = set()
    for report in reports:
        for finding in report.findings:
            if (finding.id, finding.component) not in seen:
                seen.add((finding.id, finding.component))
                merged.findings.append(finding)
        merged.cleared.update(report.cleared)
        merged.digests |= report.digests
    return merged


def counted(report: Report) -> dict[str, list[str]]:
    """Finding ids by severity, without those a VEX statement cleared."""
    out: dict[str, list[str]] = {s: [] for s in SEVERITIES}
    for finding in report.findings:
        if finding.id in report.cleared:
            continue
        if finding.id not in out[finding.severity]:
            out[finding.severity].append(finding.id)
    return out


def _severity(value: Any) -> str:
    text = str(value or "unknown").strip().lower()
    return text if text in SEVERITIES else ("medium" if text == "moderate" else "unknown")


def _digests(*values: Any) -> set[str]:
    found: set[str] = set()
    for value in values:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                found.update(_DIGEST.findall(text))
    return found


def _cap(findings: list[Finding]) -> list[Finding]:
    if len(findings) > MAX_FINDINGS:
        raise InvalidReport(f"more than {MAX_FINDINGS} findings")
    return findings


def _cyclonedx(document: dict[str, Any]) -> Report:
    report = Report(tool="cyclonedx")
    component = (document.get("metadata") or {}).get("component") or {}
    hashes = [
        f"sha256:{h.get('content', '')}"
        for h in component.get("hashes") or []
        if isinstance(h, dict) and str(h.get("alg", "")).upper() == "SHA-256"
    ]
    report.digests = _digests(
        component.get("purl"), component.get("bom-ref"), hashes, component.get("version")
    )
    for vuln in document.get("vulnerabilities") or []:
        if not isinstance(vuln, dict) or not isinstance(vuln.get("id"), str):
            raise InvalidReport("a CycloneDX vulnerability has an id")
        ratings = [r for r in vuln.get("ratings") or [] if isinstance(r, dict)]
        severity = max(
            (_severity(r.get("severity")) for r in ratings),
            key=lambda s: -SEVERITIES.index(s),
            default="unknown",
        )
        state = ((vuln.get("analysis") or {}).get("state") or "").lower()
        if state in VEX_CLEARED:
            report.cleared[vuln["id"]] = state
        affected = [a.get("ref", "") for a in vuln.get("affects") or [] if isinstance(a, dict)]
        if ratings or not state:  # a bare VEX statement is not a finding of its own
            for ref in affected or [""]:
                report.findings.append(Finding(vuln["id"], severity, str(ref)))
    report.findings = _cap(report.findings)
    return report


def _grype(document: dict[str, Any]) -> Report:
    report = Report(tool="grype")
    target = ((document.get("source") or {}).get("target")) or {}
    if isinstance(target, dict):
        report.digests = _digests(
            target.get("manifestDigest"), target.get("imageID"), target.get("repoDigests")
        )
    for match in document["matches"]:
        vuln = match.get("vulnerability") if isinstance(match, dict) else None
        if not isinstance(vuln, dict) or not isinstance(vuln.get("id"), str):
            raise InvalidReport("a Grype match has a vulnerability with an id")
        artifact = match.get("artifact") or {}
        name = f"{artifact.get('name', '')}@{artifact.get('version', '')}"
        report.findings.append(Finding(vuln["id"], _severity(vuln.get("severity")), name))
    report.findings = _cap(report.findings)
    return report


def _trivy(document: dict[str, Any]) -> Report:
    report = Report(tool="trivy")
    metadata = document.get("Metadata") or {}
    report.digests = _digests(
        metadata.get("ImageID"), metadata.get("RepoDigests"), document.get("ArtifactName")
    )
    for result in document.get("Results") or []:
        if not isinstance(result, dict):
            raise InvalidReport("Trivy results are objects")
        for vuln in result.get("Vulnerabilities") or []:
            if not isinstance(vuln, dict) or not isinstance(vuln.get("VulnerabilityID"), str):
                raise InvalidReport("a Trivy vulnerability has a VulnerabilityID")
            name = f"{vuln.get('PkgName', '')}@{vuln.get('InstalledVersion', '')}"
            report.findings.append(
                Finding(vuln["VulnerabilityID"], _severity(vuln.get("Severity")), name)
            )
    report.findings = _cap(report.findings)
    return report
