"""Vulnerability reports built by hand to the published formats: Trivy JSON (SchemaVersion 2),
Grype JSON, CycloneDX 1.5 with vulnerabilities, and CycloneDX VEX."""

from __future__ import annotations

import json
from typing import Any

from warden.demo.world import IMAGE
from warden.demo.world import scan as trivy  # the demo's CI scanner sends the same reports

OTHER_IMAGE = "sha256:" + "cd" * 32


def grype(findings: list[tuple[str, str]] = (), image: str = IMAGE) -> bytes:  # type: ignore[assignment]
    """``findings``: (CVE id, severity in Grype's capitalised form)."""
    return json.dumps(
        {
            "matches": [
                {
                    "vulnerability": {
                        "id": cve,
                        "dataSource": f"https://nvd.nist.gov/vuln/detail/{cve}",
                        "namespace": "debian:distro:debian:12",
                        "severity": severity,
                        "fix": {"versions": ["2.36-9+deb12u9"], "state": "fixed"},
                    },
                    "artifact": {"name": "libc6", "version": "2.36-9+deb12u7", "type": "deb"},
                    "matchDetails": [{"type": "exact-direct-match", "matcher": "dpkg-matcher"}],
                }
                for cve, severity in findings
            ],
            "source": {
                "type": "image",
                "target": {
                    "userInput": "registry.example/agents/bot:1.4",
                    "imageID": "sha256:" + "ee" * 32,
                    "manifestDigest": image,
                    "repoDigests": [f"registry.example/agents/bot@{image}"],
                },
            },
            "descriptor": {"name": "grype", "version": "0.86.1"},
        }
    ).encode()


def cyclonedx(
    findings: list[tuple[str, str]] = (),  # type: ignore[assignment]
    *,
    image: str = IMAGE,
    vex: dict[str, str] | None = None,
) -> bytes:
    """An SBOM with vulnerabilities; ``vex``: CVE id -> analysis state on the same document."""
    vulnerabilities: list[dict[str, Any]] = []
    for cve, severity in findings:
        entry: dict[str, Any] = {
            "bom-ref": f"vuln-{cve}",
            "id": cve,
            "source": {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{cve}"},
            "ratings": [{"severity": severity, "method": "CVSSv31", "score": 9.8}],
            "affects": [{"ref": "pkg:deb/debian/openssl@3.0.15-1"}],
        }
        if vex and cve in vex:
            entry["analysis"] = {"state": vex[cve], "justification": "code_not_reachable"}
        vulnerabilities.append(entry)
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "version": 1,
            "metadata": {
                "component": {
                    "type": "container",
                    "name": "registry.example/agents/bot",
                    "bom-ref": f"pkg:oci/bot@{image}",
                    "purl": f"pkg:oci/bot@{image}?repository_url=registry.example/agents/bot",
                }
            },
            "components": [
                {
                    "type": "library",
                    "name": "openssl",
                    "version": "3.0.15-1",
                    "purl": "pkg:deb/debian/openssl@3.0.15-1",
                }
            ],
            "vulnerabilities": vulnerabilities,
        }
    ).encode()


def vex(statements: dict[str, str]) -> bytes:
    """A CycloneDX VEX document: CVE id -> state (not_affected, ...), no ratings."""
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "vulnerabilities": [
                {
                    "id": cve,
                    "analysis": {"state": state, "justification": "code_not_reachable"},
                    "affects": [{"ref": "pkg:deb/debian/openssl@3.0.15-1"}],
                }
                for cve, state in statements.items()
            ],
        }
    ).encode()


CLEAN = trivy()


def make_healthy(book: Any, *names: str) -> None:
    """A clean scan for each agent (what a healthy workload's pipeline reports)."""
    for name in names:
        book.ingest(name, [CLEAN], by="test")
