"""Settings precedence (argument > environment > file > default) and hard bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden.config import load_settings, starter_config
from warden.errors import ConfigError


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "warden.toml").write_text(
        starter_config("file.example").replace("jwt_svid_ttl_s = 300", "jwt_svid_ttl_s = 120")
    )
    assert load_settings(state_dir=tmp_path).trust_domain == "file.example"
    assert load_settings(state_dir=tmp_path).jwt_svid_ttl_s == 120
    monkeypatch.setenv("WARDEN_TRUST_DOMAIN", "env.example")
    assert load_settings(state_dir=tmp_path).trust_domain == "env.example"
    assert load_settings(state_dir=tmp_path, trust_domain="arg.example").trust_domain == (
        "arg.example"
    )
    monkeypatch.delenv("WARDEN_TRUST_DOMAIN")
    assert load_settings(state_dir=tmp_path / "empty").trust_domain == "example.org"


def test_bounds_are_enforced(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="x509_svid_ttl_s"):
        load_settings(state_dir=tmp_path, x509_svid_ttl_s=10 * 86_400)
    with pytest.raises(ConfigError, match="exceeds"):
        load_settings(state_dir=tmp_path, jwt_svid_ttl_s=1800, jwt_svid_max_ttl_s=600)
    with pytest.raises(ConfigError):
        load_settings(state_dir=tmp_path, no_such_setting=1)


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    with pytest.raises(Exception, match="frozen"):
        settings.api_port = 1  # type: ignore[misc]


def test_broken_config_file(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text("[warden\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(state_dir=tmp_path)
