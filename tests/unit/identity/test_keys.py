"""Private keys are encrypted at rest, readable only by Warden's user, never in the env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warden.identity.authority import IdentityAuthority, file_key_manager
from warden.identity.ca import FileKeyManager
from warden.identity.errors import KeyStoreError


def test_key_files_are_encrypted_and_private(sqlite_authority: IdentityAuthority) -> None:
    key_dir = sqlite_authority.settings.state_dir / "keys"
    assert oct(key_dir.stat().st_mode & 0o777) == "0o700"
    files = sorted(p.name for p in key_dir.iterdir())
    assert {"root-1.pem", "intermediate-1.pem", "jwt-1.pem", "master.key"} <= set(files)
    for path in key_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
        if path.suffix == ".pem":
            assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    master = sqlite_authority.settings.key_file.read_bytes().strip()
    assert all(master.decode() not in value for value in os.environ.values())


def test_group_readable_master_key_is_refused(sqlite_authority: IdentityAuthority) -> None:
    settings = sqlite_authority.settings
    os.chmod(settings.key_file, 0o640)
    with pytest.raises(KeyStoreError, match="group or others"):
        file_key_manager(settings).load_key("root-1")


def test_wrong_master_key_cannot_open_keys(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> None:
    settings = sqlite_authority.settings
    FileKeyManager.create(tmp_path / "other", tmp_path / "other" / "master.key")
    wrong = FileKeyManager(settings.state_dir / "keys", tmp_path / "other" / "master.key")
    with pytest.raises(KeyStoreError, match="cannot load"):
        wrong.load_key("root-1")


def test_missing_and_invalid_references(sqlite_authority: IdentityAuthority) -> None:
    keys = file_key_manager(sqlite_authority.settings)
    with pytest.raises(KeyStoreError, match="missing"):
        keys.load_key("nope")
    with pytest.raises(KeyStoreError, match="invalid key reference"):
        keys.load_key("../../etc/passwd")
    with pytest.raises(KeyStoreError, match="already exists"):
        keys.create_key("root-1")
