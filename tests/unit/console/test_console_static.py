"""The vendored front-end files are the pinned releases (static/VENDORED.md), and the console
needs no other script: every <script> of every template is one of them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import warden.console

STATIC = Path(warden.console.__file__).parent / "static"
TEMPLATES = Path(warden.console.__file__).parent / "templates"


def test_vendored_files_match_their_recorded_digests() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    rows = re.findall(r"^\| (\S+) \| .+ \| (\S+) \| ([0-9a-f]{64}) \|$", table, re.M)
    assert {name for name, _, _ in rows} == {"htmx.min.js", "sse.js"}
    for name, version, digest in rows:
        data = (STATIC / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        if name == "htmx.min.js":
            assert f'version:"{version}"' in data.decode()


def test_templates_carry_no_inline_script_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and " style=" not in text, template.name
        assert not re.search(r"\bon[a-z]+=", text), template.name  # no inline handlers
        for src in re.findall(r'<script src="/console/static/([^"]+)"', text):
            assert (STATIC / src).is_file(), src
