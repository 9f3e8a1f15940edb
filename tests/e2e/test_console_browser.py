"""The console in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, no
browser download) against the control plane and a gateway in front of a real upstream, all on
127.0.0.1 with real TLS. The browser trusts exactly the control plane's key (Chromium's SPKI
allow-list), not any certificate. Screenshots of every page go to the artefacts directory
(``WARDEN_ARTIFACTS``, default ``.artifacts/``)."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import make_authority
from tests.integration.test_approvals import PLAYBOOKS, Plane
from tests.integration.test_dlp_gateway import DlpSetup
from warden.config import load_settings
from warden.console.access import Console
from warden.store import open_store

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("WARDEN_ARTIFACTS", Path(__file__).parents[2] / ".artifacts"))
SHOTS = ARTIFACTS / "console"

if not CHROMIUM.exists():
    if os.environ.get("WARDEN_EXPECT_BROWSER") == "1":
        raise RuntimeError("the console's browser tests need Debian's chromium at /usr/bin")
    pytest.skip("no /usr/bin/chromium on this machine", allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402


class Stack:
    """Control plane, gateway and upstream on one SQLite store, with four operators."""

    def __init__(self, root: Path) -> None:
        state = root / "state"
        state.mkdir(mode=0o700)
        settings = load_settings(state_dir=state)
        self.store = open_store(settings.database)
        authority = make_authority(settings, self.store)
        playbooks = root / "playbooks"
        playbooks.mkdir()
        for name, text in PLAYBOOKS.items():
            (playbooks / name).write_text(text)
        self.setup = DlpSetup(authority, root, playbooks=playbooks)
        self.authority = self.setup.authority
        self.plane = Plane(self.authority, root)
        for name, role in (("qa", "operator"), ("ida", "auditor")):
            self.authority.operators.add(name, role=role, created_by="test")  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.plane.server.url

    def spki(self) -> str:
        """The base64 SHA-256 of the control plane's public key, for Chromium's allow-list."""
        leaf = x509.load_pem_x509_certificates(self.plane.server.credentials.certfile.read_bytes())
        der = leaf[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(der).digest()).decode()

    def stop(self) -> None:
        self.plane.server.stop()
        self.setup.stop()
        self.store.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("console"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def chromium(stack: Stack) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--ignore-certificate-errors-spki-list={stack.spki()}",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768})  # a laptop
    try:
        yield ctx
    finally:
        ctx.close()


def signed_in(stack: Stack, context: BrowserContext, operator: str) -> Page:
    """A page signed in as ``operator`` through a one-time link, clicked as a person would."""
    token = Console.link_for(stack.authority, operator, by="test")
    page = context.new_page()
    page.goto(f"{stack.url}/console/login?token={token}")
    page.get_by_role("button", name="Continue to the console").click()
    page.wait_for_url(f"{stack.url}/console")
    return page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def traffic(stack: Stack) -> dict[str, Any]:
    """Some allowed and denied requests through the gateway; the denied one's decision id."""
    with stack.setup.client("invoice-bot") as agent:
        for _ in range(3):
            assert agent.get("/ledger/invoices").status_code == 200
        denied = agent.get("/ehr/patients")
    with stack.setup.client("triage-bot") as triage:
        assert triage.get("/ehr/patients").status_code == 200
    assert denied.status_code == 403
    stack.setup.gateway.recorder.checkpoint()
    return dict(denied.json())


def test_each_page_loads_with_real_data(stack: Stack, context: BrowserContext) -> None:
    denied = traffic(stack)
    page = signed_in(stack, context, "qa")
    # Keyboard first: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.locator('[data-checkpoint="verified"]').is_visible()
    assert page.locator('[data-status="active"]').inner_text() == "3"
    assert fits_the_width(page)
    shot(page, "overview")
    pages = {
        "agents": ("/console/agents", 'tr[data-agent="invoice-bot"]'),
        "agent": ("/console/agents/invoice-bot", f'tr[data-decision-id="{denied["decision_id"]}"]'),
        "decisions": ("/console/decisions", f'tr[data-decision-id="{denied["decision_id"]}"]'),
        "decision": (f"/console/decisions/{denied['decision_id']}", '[data-proof="verified"]'),
        "flows": ("/console/flows", "svg.flows text.edge-label"),
        "incidents": ("/console/incidents", "#approvals"),
        "policies": ("/console/policies", "#h-active"),
    }
    for name, (path, proof) in pages.items():
        page.goto(stack.url + path)
        assert page.locator(proof).first.is_visible(), name
        assert fits_the_width(page), name
        shot(page, name)
    # The nav says where you are in words, not only by colour.
    assert page.locator('nav a[aria-current="page"]').inner_text() == "Policies"


def test_a_gateway_decision_appears_live_within_a_second(
    stack: Stack, context: BrowserContext
) -> None:
    page = context.new_page()
    page.add_init_script(
        "document.addEventListener('htmx:sseOpen', () => { window.__live = true; });"
    )
    token = Console.link_for(stack.authority, "ida", by="test")
    page.goto(f"{stack.url}/console/login?token={token}")
    page.get_by_role("button", name="Continue to the console").click()
    page.wait_for_url(f"{stack.url}/console")
    page.get_by_role("link", name="Live decisions").click()
    page.wait_for_function("() => window.__live === true", timeout=5000)
    with stack.setup.client("invoice-bot") as agent:
        answer = agent.get("/ledger/invoices")
    assert answer.status_code == 200
    decision_id = answer.headers["x-warden-decision-id"]
    row = page.locator(f'tr[data-decision-id="{decision_id}"]')
    row.wait_for(timeout=1000)  # the bound: within a second of the answer
    assert "invoice-bot" in row.inner_text() and "allow" in row.inner_text()
    shot(page, "decisions-live")
    row.get_by_role("link", name="allow").click()
    page.wait_for_url(f"**/console/decisions/{decision_id}")
    assert page.get_by_role("heading", name="Why").is_visible()


def test_an_approval_clicked_in_the_console_releases_a_parked_request(
    stack: Stack, context: BrowserContext
) -> None:
    engine = stack.setup.gateway.response
    assert engine is not None
    engine.trigger("writes-need-the-owner", "invoice-bot", by="test", reason="review")
    page = signed_in(stack, context, "qa")  # the agent's owner
    with stack.setup.client("invoice-bot") as agent, ThreadPoolExecutor(1) as pool:
        parked: Future[httpx.Response] = pool.submit(agent.post, "/ledger/invoices", json={})
        deadline = time.monotonic() + 5
        while not engine.approvals.list(status="pending", agent="invoice-bot"):
            assert time.monotonic() < deadline, "nothing was parked"
            time.sleep(0.05)
        assert not parked.done()
        page.goto(f"{stack.url}/console/incidents")
        pending = page.locator("tr[data-approval]", has_text="pending").first
        shot(page, "incidents-pending")
        pending.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"{stack.url}/console/incidents")
        answer = parked.result(timeout=10)
    assert answer.status_code == 200
    assert page.locator("tr[data-approval]", has_text="approved").first.is_visible()


def test_a_quarantine_clicked_in_the_console_makes_the_next_request_fail(
    stack: Stack, context: BrowserContext
) -> None:
    page = signed_in(stack, context, "qa")
    with stack.setup.client("nurse-bot") as agent:
        assert agent.get("/ehr/patients").status_code == 200
        page.goto(f"{stack.url}/console/agents/nurse-bot")
        page.get_by_role("link", name="Quarantine…").click()
        page.get_by_label("Reason").fill("reads more than usual")
        shot(page, "confirm-quarantine")
        page.get_by_role("button", name="Quarantine nurse-bot").click()
        page.wait_for_url(f"{stack.url}/console/agents/nurse-bot")
        assert page.locator("h1 .status").inner_text() == "quarantined"
        refused = agent.get("/ehr/patients")
    # Its credential no longer authenticates: refused before any decision, and recorded.
    assert refused.status_code == 401, refused.text
    assert stack.authority.agents.get("nurse-bot").status == "quarantined"
    stack.authority.agents.release("nurse-bot", "test over")


def test_a_request_without_a_session_is_refused(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(f"{stack.url}/console/agents")
    assert page.url == f"{stack.url}/console/login"
    assert page.get_by_role("heading", name="Sign in to the Warden console").is_visible()
    shot(page, "login")
    status = page.evaluate(
        """async () => (await fetch('/console/agents/triage-bot/revoke',
            {method: 'POST', body: new URLSearchParams({csrf: 'guess'})})).status"""
    )
    assert status == 401
    assert stack.authority.agents.get("triage-bot").status == "active"


def test_a_console_action_the_user_may_not_take_is_refused(
    stack: Stack, context: BrowserContext
) -> None:
    page = signed_in(stack, context, "ida")  # an auditor
    page.goto(f"{stack.url}/console/agents/triage-bot")
    assert page.get_by_role("link", name="Quarantine…").count() == 0
    page.goto(f"{stack.url}/console/agents/triage-bot/quarantine")
    assert page.get_by_role("heading", name="Not permitted").is_visible()
    shot(page, "not-permitted")
    # Sent anyway, with the session's own CSRF token, from the console's own page: refused.
    page.goto(f"{stack.url}/console/agents/triage-bot")
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector('input[name=csrf]').value;
            const body = new URLSearchParams({csrf, reason: 'try'});
            const answer = await fetch('/console/agents/triage-bot/quarantine',
                                       {method: 'POST', body});
            return answer.status;
        }"""
    )
    assert status == 403
    assert stack.authority.agents.get("triage-bot").status == "active"
