"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Setup
from warden.identity.authority import IdentityAuthority


@pytest.fixture
def setup(authority: IdentityAuthority, tmp_path: Path) -> Iterator[Setup]:
    """A running gateway with its upstreams, on each store backend."""
    s = Setup(authority, tmp_path)
    try:
        yield s
    finally:
        s.stop()
