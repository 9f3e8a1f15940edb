"""Where the policy packs shipped with Warden live."""

from __future__ import annotations

from pathlib import Path

import warden


def shipped_policies() -> Path:
    """The ``policies/`` directory: inside an installed wheel, or at the top of a checkout."""
    package = Path(warden.__file__).parent
    installed = package / "_policies"
    if installed.is_dir():
        return installed
    return package.parent.parent / "policies"


def shipped_playbooks() -> Path:
    """The ``playbooks/`` directory, found the same way as the policy packs."""
    package = Path(warden.__file__).parent
    installed = package / "_playbooks"
    if installed.is_dir():
        return installed
    return package.parent.parent / "playbooks"
