"""Assembling a process's response engine: what it says about its playbooks."""

from __future__ import annotations

import logging

import pytest

from warden.audit.setup import open_decision_log
from warden.identity.authority import IdentityAuthority
from warden.response import setup


def test_an_unconfigured_action_is_reported_once_per_process(
    authority: IdentityAuthority, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setup, "_reported", set())  # as in a process that just started
    log = open_decision_log(authority)
    try:
        with caplog.at_level(logging.WARNING, logger="warden.response"):
            # `warden up`: the control plane's engine and the gateway's, on the same playbooks
            assert setup.open_response_engine(authority, log, runner="control-plane") is not None
            assert setup.open_response_engine(authority, log, runner="gateway") is not None
    finally:
        log.close()
    said = [r.getMessage() for r in caplog.records if "is not configured" in r.getMessage()]
    assert said  # the shipped playbooks name a webhook no test configures
    assert len(said) == len(set(said))
    assert any("webhook 'security'" in line for line in said)
