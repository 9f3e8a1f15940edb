"""Helpers to write small bundles on disk for tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from warden.policy.packs import shipped_policies

DEFAULT = shipped_policies() / "default"


def write_bundle(
    root: Path,
    policies: str,
    *,
    version: int = 1,
    tests: str | None = None,
    schema: str | None = None,
) -> Path:
    """A bundle with the default schema, ``policies`` and optional tests."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "warden.cedarschema").write_text(
        schema if schema is not None else (DEFAULT / "warden.cedarschema").read_text()
    )
    (root / "manifest.yaml").write_text(f"name: test\nversion: {version}\n")
    (root / "policies.cedar").write_text(policies)
    if tests is not None:
        (root / "tests").mkdir(exist_ok=True)
        (root / "tests" / "cases.yaml").write_text(tests)
    return root


@pytest.fixture
def default_copy(tmp_path: Path) -> Path:
    target = tmp_path / "default"
    shutil.copytree(DEFAULT, target)
    return target
