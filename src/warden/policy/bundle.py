"""Policy bundles: a directory (or .tar.gz) of Cedar policies, their schema, a manifest and
their own tests, optionally signed.

A bundle is compiled once: parsed, validated against its schema, its annotations read (``@id``,
``@reason``, ``@obligation``) and the context attributes its policies read worked out, so that
each decision passes Cedar only what the policies can look at. Its revision is the SHA-256 of a
canonical listing of its files.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cedarpy
import yaml

from warden.policy.errors import PolicyPackInvalid
from warden.policy.principal_use import PrincipalUse, principal_use
from warden.policy.schema_actions import action_parents

SIGNATURE_FILE = "bundle.sig"
MANIFEST_FILE = "manifest.yaml"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_FILES = 2000


@dataclass(frozen=True)
class BundleFiles:
    """The files of a bundle, by relative POSIX path, read into memory."""

    source: str
    files: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> BundleFiles:
        if path.is_dir():
            return cls._from_dir(path)
        if path.name.endswith((".tar.gz", ".tgz")):
            return cls._from_tar(path)
        raise PolicyPackInvalid(str(path), "a bundle is a directory or a .tar.gz")

    @classmethod
    def _from_dir(cls, root: Path) -> BundleFiles:
        files: dict[str, bytes] = {}
        total = 0
        for item in sorted(root.rglob("*")):
            if item.is_symlink():
                raise PolicyPackInvalid(str(root), f"{item.name} is a symbolic link")
            if not item.is_file() or any(p.startswith(".") for p in item.relative_to(root).parts):
                continue
            data = item.read_bytes()
            total += len(data)
            files[item.relative_to(root).as_posix()] = data
            if total > MAX_BUNDLE_BYTES or len(files) > MAX_FILES:
                raise PolicyPackInvalid(str(root), "bundle too large")
        return cls(str(root), files)

    @classmethod
    def _from_tar(cls, archive: Path) -> BundleFiles:
        files: dict[str, bytes] = {}
        total = 0
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isdir():
                    continue
                name = PurePosixPath(member.name)
                if not member.isfile() or name.is_absolute() or ".." in name.parts:
                    raise PolicyPackInvalid(str(archive), f"unsafe member {member.name!r}")
                total += member.size
                if total > MAX_BUNDLE_BYTES or len(files) >= MAX_FILES:
                    raise PolicyPackInvalid(str(archive), "bundle too large")
                handle = tar.extractfile(member)
                assert handle is not None
                relative = name.as_posix().removeprefix("./")
                if any(part.startswith(".") for part in PurePosixPath(relative).parts):
                    continue
                files[relative] = handle.read()
        return cls(str(archive), files)

    def digest(self) -> str:
        """``sha256:`` of the canonical listing (path, NUL, file SHA-256; the signature file
        excluded): what the revision names and what a signature covers."""
        listing = io.BytesIO()
        for name in sorted(self.files):
            if name == SIGNATURE_FILE:
                continue
            listing.write(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return "sha256:" + hashlib.sha256(listing.getvalue()).hexdigest()


@dataclass(frozen=True)
class PolicyMeta:
    """What a bundle says about one policy, by its Cedar id (``policy0``...)."""

    id: str
    effect: str
    reason: str
    obligations: tuple[str, ...]


@dataclass(frozen=True)
class CompiledBundle:
    """A parsed, schema-validated bundle, ready for decisions."""

    name: str
    version: int
    revision: str
    policies: Any  # cedarpy.PolicySet
    meta: dict[str, PolicyMeta]
    context_paths: dict[str, Any] | None  # None: pass the whole context
    policy_text: str
    schema_text: str
    action_parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    principal_use: PrincipalUse = field(
        default_factory=lambda: PrincipalUse(True, False, frozenset())
    )
    tests: dict[str, bytes] = field(default_factory=dict)
    signature: bytes | None = None
    source: str = ""
    files: dict[str, bytes] = field(default_factory=dict, repr=False)  # as read, to hand on

    @property
    def empty(self) -> bool:
        return not self.meta


def compile_bundle(files: BundleFiles) -> CompiledBundle:
    """Parse and validate ``files``; :class:`PolicyPackInvalid` says what is wrong."""
    manifest = _manifest(files)
    cedar = {n: d for n, d in files.files.items() if n.endswith(".cedar")}
    schemas = [d for n, d in files.files.items() if n.endswith(".cedarschema")]
    if len(schemas) != 1:
        raise PolicyPackInvalid(files.source, "needs exactly one .cedarschema file")
    schema_text = schemas[0].decode()
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except Exception as exc:
        raise PolicyPackInvalid(files.source, f"schema does not parse: {exc}") from exc
    text = "\n".join(cedar[n].decode() for n in sorted(cedar))
    try:
        ast = json.loads(cedarpy.policies_to_json_str(text)) if text.strip() else {}
    except Exception as exc:
        raise PolicyPackInvalid(files.source, f"policies do not parse: {exc}") from exc
    if text.strip():
        result = cedarpy.validate_policies(text, schema)
        if not result.validation_passed:
            problems = "; ".join(str(e) for e in result.errors[:10])
            raise PolicyPackInvalid(files.source, f"schema validation failed: {problems}")
    meta = _meta(ast.get("staticPolicies", {}), files.source)
    return CompiledBundle(
        name=str(manifest.get("name", Path(files.source).name)),
        version=int(manifest["version"]),
        revision=files.digest(),
        policies=cedarpy.PolicySet.from_str(text),
        meta=meta,
        context_paths=_context_paths(ast.get("staticPolicies", {})),
        policy_text=text,
        schema_text=schema_text,
        action_parents=action_parents(schema_text),
        principal_use=principal_use(ast.get("staticPolicies", {})),
        tests={
            n: d
            for n, d in files.files.items()
            if n.startswith("tests/") and n.endswith((".yaml", ".yml"))
        },
        signature=files.files.get(SIGNATURE_FILE),
        source=files.source,
        files=dict(files.files),
    )


def _manifest(files: BundleFiles) -> dict[str, Any]:
    raw = files.files.get(MANIFEST_FILE)
    if raw is None:
        raise PolicyPackInvalid(files.source, f"has no {MANIFEST_FILE}")
    try:
        manifest = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyPackInvalid(files.source, f"{MANIFEST_FILE} is not YAML: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("version"), int):
        raise PolicyPackInvalid(files.source, f"{MANIFEST_FILE} needs an integer version")
    if manifest["version"] < 1:
        raise PolicyPackInvalid(files.source, "version starts at 1")
    return manifest


def _meta(policies: dict[str, Any], source: str) -> dict[str, PolicyMeta]:
    meta: dict[str, PolicyMeta] = {}
    seen: set[str] = set()
    for cedar_id, policy in policies.items():
        annotations = policy.get("annotations", {})
        policy_id = annotations.get("id") or cedar_id
        if policy_id in seen:
            raise PolicyPackInvalid(source, f"two policies have @id {policy_id!r}")
        seen.add(policy_id)
        obligations = tuple(
            o.strip() for o in annotations.get("obligation", "").split(",") if o.strip()
        )
        meta[cedar_id] = PolicyMeta(
            id=policy_id,
            effect=policy.get("effect", "permit"),
            reason=annotations.get("reason", ""),
            obligations=obligations,
        )
    return meta


def _context_paths(policies: dict[str, Any]) -> dict[str, Any] | None:
    """The tree of context attributes the policies read, or None when they use the whole
    context (then all of it is passed). Leaves are ``True`` (pass the whole value)."""
    tree: dict[str, Any] = {}
    whole = False

    def path_of(node: Any) -> list[str] | None:
        # context.a.b as a list ["a", "b"]; None when ``node`` is not rooted at context.
        if isinstance(node, dict):
            if node.get("Var") == "context":
                return []
            inner = node.get(".")
            if isinstance(inner, dict):
                base = path_of(inner.get("left"))
                if base is not None:
                    return [*base, inner["attr"]]
        return None

    def add(path: list[str]) -> None:
        nonlocal whole
        if not path:
            whole = True
            return
        level = tree
        for part in path[:-1]:
            existing = level.get(part)
            if existing is True:
                return
            level = level.setdefault(part, {})
        level[path[-1]] = True

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in (".", "has"):
                inner = node.get(key)
                if isinstance(inner, dict) and "attr" in inner:
                    base = path_of(inner.get("left"))
                    if base is not None:
                        add([*base, inner["attr"]])
                        return
            if node.get("Var") == "context":
                add([])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for policy in policies.values():
        walk(policy.get("conditions", []))
    return None if whole else tree


def project(context: dict[str, Any], paths: dict[str, Any] | None) -> dict[str, Any]:
    """Only the attributes ``paths`` names (all of ``context`` when ``paths`` is None)."""
    if paths is None:
        return context
    out: dict[str, Any] = {}
    for key, sub in paths.items():
        if key not in context:
            continue
        value = context[key]
        if sub is True or not isinstance(value, dict):
            out[key] = value
        else:
            out[key] = project(value, sub)
    return out
