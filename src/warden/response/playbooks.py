"""Playbooks: what Warden does, on its own, when an agent trips a wire.

A playbook bundle is a directory (or .tar.gz) of YAML files with a ``manifest.yaml`` (name,
integer version), optionally signed (``bundle.sig``, the same Ed25519 envelope as policy
bundles). Each playbook has one trigger, conditions, and ordered actions; every file is
validated against the models below (unknown keys are errors), so a typo never disables a
playbook silently. A playbook names webhooks and hooks only by the names an operator gave them
in Warden's configuration: it never carries a URL secret or a command line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from warden.policy.bundle import MANIFEST_FILE, SIGNATURE_FILE, BundleFiles
from warden.policy.errors import PolicyPackInvalid

DataClass = Literal["public", "internal", "confidential", "pii", "phi", "pci"]
DlpEvent = Literal["dlp_window_exceeded", "bulk_export", "residency_breach"]
DLP_DEFAULT: tuple[DlpEvent, ...] = ("dlp_window_exceeded",)
Liftable = Literal["quarantine", "restrict", "throttle", "approval"]
LIFT_DEFAULT: tuple[Liftable, ...] = ("quarantine",)
NAME = r"^[a-z0-9][a-z0-9._-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- triggers ------------------------------------------------------------------------------------


class RiskTrigger(_Strict):
    """The agent's risk score reaches ``at_least``; with ``named``, only when a named detector
    (one giving 300 points or more) agrees: the anomaly model alone never contains."""

    at_least: int = Field(ge=1, le=1000)
    named: bool = True
    # Factors left out of both (``workload_health``: a health playbook answers for it).
    ignore: list[str] = Field(default_factory=list)


class DetectorTrigger(_Strict):
    """A named detector raises its factor (``new_network``, ``payment_destination``...)."""

    name: str = Field(pattern=r"^[a-z_]{1,64}$")
    min_points: int = Field(default=1, ge=1, le=1000)


class DlpTrigger(_Strict):
    """A data-loss window is exceeded (or a bulk export, a residency breach), for the classes
    listed (any, when empty)."""

    events: list[DlpEvent] = Field(default_factory=lambda: list(DLP_DEFAULT), min_length=1)
    classes: list[Literal["pii", "phi", "pci", "confidential"]] = Field(default_factory=list)


class HealthTrigger(_Strict):
    status: list[Literal["degraded", "compromised"]] = Field(min_length=1)


class DenialsTrigger(_Strict):
    """``count`` denials of the agent within ``within_s`` seconds."""

    count: int = Field(ge=1, le=100_000)
    within_s: float = Field(gt=0, le=86_400)


class PolicyTrigger(_Strict):
    """A decision determined by one of these policies (by ``@id``), allowed or denied."""

    ids: list[str] = Field(min_length=1)
    decision: Literal["allow", "deny", "any"] = "any"


class AttestationTrigger(_Strict):
    """A workload failed to attest as the agent."""


class ManualTrigger(_Strict):
    """``warden playbook trigger NAME --agent A`` or ``POST /v1/playbooks/{name}/trigger``."""


class Trigger(_Strict):
    """Exactly one of these."""

    risk: RiskTrigger | None = None
    detector: DetectorTrigger | None = None
    dlp: DlpTrigger | None = None
    health: HealthTrigger | None = None
    denials: DenialsTrigger | None = None
    policy: PolicyTrigger | None = None
    attestation_failed: AttestationTrigger | None = None
    manual: ManualTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if len(self.model_fields_set) != 1:
            raise ValueError("a trigger names exactly one kind")
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.model_fields_set))


# -- conditions ----------------------------------------------------------------------------------


class Conditions(_Strict):
    """All must hold. ``labels``: the agent has these (``key: value``); ``data_classes``: the
    triggering request or event touched one of these; ``hours_utc``: [from, to) hours;
    ``weekdays``: 0 = Monday."""

    labels: dict[str, str] = Field(default_factory=dict)
    data_classes: list[DataClass] = Field(default_factory=list)
    hours_utc: tuple[int, int] | None = None
    weekdays: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ranges(self) -> Conditions:
        if self.hours_utc is not None and not all(0 <= h <= 24 for h in self.hours_utc):
            raise ValueError("hours_utc are between 0 and 24")
        if any(not 0 <= d <= 6 for d in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6")
        return self


# -- actions -------------------------------------------------------------------------------------

RATE = r"^[1-9][0-9]{0,6}/[smh]$"


class Revoke(_Strict):
    """Every credential of the agent dies (its credential epoch moves); renewals refused."""


class Quarantine(_Strict):
    """Deny everything for the agent on every enforcement point until released."""


class Throttle(_Strict):
    rate: str = Field(pattern=RATE)  # "10/m"
    route: str = ""  # one route, or every route of the agent when empty


class Restrict(_Strict):
    """Allow only these data classes until ``until`` (a clean vulnerability report, or a
    release)."""

    classes: list[DataClass]
    until: Literal["clean_report", "release"] = "release"


class RequireApproval(_Strict):
    """These actions are parked until the agent's owner approves or denies; a timeout
    denies."""

    actions: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=300.0, ge=1, le=86_400)


class Notify(_Strict):
    webhook: str = Field(pattern=NAME)  # a name from ``response_webhooks``


class Incident(_Strict):
    title: str = Field(default="", max_length=500)
    severity: Literal["low", "medium", "high", "critical"] = "high"


class Reprovision(_Strict):
    hook: str = Field(pattern=NAME)  # a name from ``response_hooks``


class Release(_Strict):
    """Lift a quarantine or a restriction: asked of an approver, done once approved."""

    lift: list[Liftable] = Field(default_factory=lambda: list(LIFT_DEFAULT), min_length=1)
    timeout_s: float = Field(default=86_400.0, ge=60, le=30 * 86_400)


ACTION_MODELS: dict[str, type[_Strict]] = {
    "revoke": Revoke,
    "quarantine": Quarantine,
    "throttle": Throttle,
    "restrict": Restrict,
    "require_approval": RequireApproval,
    "notify": Notify,
    "incident": Incident,
    "reprovision": Reprovision,
    "release": Release,
}


class Action(_Strict):
    """One step: ``{revoke: {}}``, ``{throttle: {rate: 10/m}}``..."""

    kind: str
    terms: Any

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"kind", "terms"}:
            return data
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError("an action is one key: revoke, quarantine, throttle, ...")
        kind, terms = next(iter(data.items()))
        model = ACTION_MODELS.get(kind)
        if model is None:
            raise ValueError(f"unknown action {kind!r}; one of {', '.join(ACTION_MODELS)}")
        return {"kind": kind, "terms": model.model_validate(terms or {})}


class Playbook(_Strict):
    name: str = Field(pattern=NAME)
    description: str = Field(default="", max_length=2000)
    trigger: Trigger
    when: Conditions = Field(default_factory=Conditions)
    actions: Annotated[list[Action], Field(min_length=1, max_length=32)]
    # One run per agent within this time: enforcement points that see the same burst act once.
    cooldown_s: float = Field(default=300.0, ge=0, le=7 * 86_400)
    enabled: bool = True

    def action_kinds(self) -> list[str]:
        return [a.kind for a in self.actions]


class PlaybookBundle(BaseModel):
    """Validated playbooks with the bundle's name, version and revision."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    revision: str
    playbooks: tuple[Playbook, ...]
    source: str = ""

    def by_name(self, name: str) -> Playbook | None:
        return next((p for p in self.playbooks if p.name == name), None)

    def unconfigured(self, webhooks: Iterable[str], hooks: Iterable[str]) -> list[str]:
        """Webhooks and hooks the playbooks name that the configuration lacks."""
        known_webhooks, known_hooks = set(webhooks), set(hooks)
        missing = []
        for playbook in self.playbooks:
            for action in playbook.actions:
                if isinstance(action.terms, Notify) and action.terms.webhook not in known_webhooks:
                    missing.append(f"{playbook.name}: webhook {action.terms.webhook!r}")
                if isinstance(action.terms, Reprovision) and action.terms.hook not in known_hooks:
                    missing.append(f"{playbook.name}: hook {action.terms.hook!r}")
        return missing


def compile_playbooks(files: BundleFiles) -> PlaybookBundle:
    """Validate every playbook of ``files``; :class:`PolicyPackInvalid` says what is wrong and
    where."""
    raw = files.files.get(MANIFEST_FILE)
    if raw is None:
        raise PolicyPackInvalid(files.source, f"has no {MANIFEST_FILE}")
    manifest = _yaml(files.source, MANIFEST_FILE, raw)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("version"), int):
        raise PolicyPackInvalid(files.source, f"{MANIFEST_FILE} needs an integer version")
    if manifest["version"] < 1:
        raise PolicyPackInvalid(files.source, "version starts at 1")
    playbooks: list[Playbook] = []
    for name in sorted(files.files):
        if name in (MANIFEST_FILE, SIGNATURE_FILE) or not name.endswith((".yaml", ".yml")):
            continue
        document = _yaml(files.source, name, files.files[name])
        try:
            playbook = Playbook.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'playbook'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise PolicyPackInvalid(files.source, f"{name}: {problems}") from exc
        if any(p.name == playbook.name for p in playbooks):
            raise PolicyPackInvalid(files.source, f"{name}: two playbooks are {playbook.name!r}")
        playbooks.append(playbook)
    return PlaybookBundle(
        name=str(manifest.get("name", Path(files.source).name)),
        version=int(manifest["version"]),
        revision=files.digest(),
        playbooks=tuple(playbooks),
        source=files.source,
    )


def _yaml(source: str, name: str, raw: bytes) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyPackInvalid(source, f"{name} is not YAML: {exc}") from exc
