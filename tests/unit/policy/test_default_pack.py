"""Every case of the default pack's own tests, one pytest case each."""

from __future__ import annotations

import pytest

from tests.unit.policy.conftest import DEFAULT
from warden.policy.bundle import BundleFiles, compile_bundle
from warden.policy.testing import CaseResult, run_bundle_tests

BUNDLE = compile_bundle(BundleFiles.read(DEFAULT))
RESULTS = run_bundle_tests(BUNDLE)


def test_every_policy_of_the_pack_is_exercised() -> None:
    hit = {reason["policy"] for r in RESULTS for reason in r.got.get("reasons", [])}
    assert {m.id for m in BUNDLE.meta.values()} <= hit


@pytest.mark.parametrize("result", RESULTS, ids=[f"{r.file}:{r.name}" for r in RESULTS])
def test_case(result: CaseResult) -> None:
    assert result.passed, result.problems
