"""The console over real HTTPS, as a browser speaks to it (no client certificate): sign-in by
one-time link, sessions and their cookie, CSRF and origin checks, the admin pack deciding
every page and action, every action in the decision log, the live stream, and each page with
real data from a gateway in front of a real upstream. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from tests.integration.test_approvals import PLAYBOOKS, Plane
from tests.integration.test_dlp_gateway import DlpSetup
from tests.support.console import browser, csrf_of, sign_in
from warden.audit.reader import LogReader
from warden.clock import utcnow
from warden.console.access import COOKIE, Console
from warden.identity.authority import IdentityAuthority
from warden.store import schema


@pytest.fixture
def stack(authority: IdentityAuthority, tmp_path: Path) -> Iterator[tuple[DlpSetup, Plane]]:
    bundle = tmp_path / "playbooks"
    bundle.mkdir()
    for name, text in PLAYBOOKS.items():
        (bundle / name).write_text(text)
    setup = DlpSetup(authority, tmp_path, playbooks=bundle)
    plane = Plane(setup.authority, tmp_path)
    for name, role in (("qa", "operator"), ("ida", "auditor"), ("sam", "approver")):
        setup.authority.operators.add(name, role=role, created_by="test")  # type: ignore[arg-type]
    try:
        yield setup, plane
    finally:
        for client in plane.clients:
            client.close()
        plane.server.stop()
        setup.stop()


def opened(plane: Plane, client: httpx.Client) -> httpx.Client:
    plane.clients.append(client)  # closed before the server stops
    return client


def console_entries(setup: DlpSetup, plane: Plane) -> list[dict[str, object]]:
    plane.server.log.checkpoint()
    return LogReader(setup.authority.store).search(kind="console")


def test_without_a_session_nothing_is_shown_or_done(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    client = opened(plane, browser(plane.server))
    for path in ("/console", "/console/agents", "/console/decisions", "/console/policies"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/login"), path
    refused = client.post("/console/agents/invoice-bot/quarantine", data={"csrf": "x"})
    assert refused.status_code == 401
    stream = client.get("/console/decisions/stream", headers={"accept": "text/event-stream"})
    assert stream.status_code == 401
    client.cookies.set(COOKIE, "wsess_" + "A" * 43)  # a made-up session
    assert client.get("/console/agents").status_code == 303
    assert setup.authority.agents.get("invoice-bot").status == "active"
    login = client.get("/console/login")
    assert login.status_code == 200 and "Sign in" in login.text


def test_a_login_link_works_once_and_its_cookie_is_locked_down(
    stack: tuple[DlpSetup, Plane],
) -> None:
    setup, plane = stack
    token = Console.link_for(setup.authority, "qa", by="test")
    first = opened(plane, browser(plane.server))
    shown = first.get("/console/login", params={"token": token})
    assert shown.status_code == 200 and token in shown.text  # shown, not used up
    answer = first.post("/console/login", data={"token": token})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=wsess_")
    lowered = cookie.lower()
    for flag in ("httponly", "secure", "samesite=strict", "path=/", "max-age=3600"):
        assert flag in lowered, flag
    assert "domain=" not in lowered  # __Host-: this origin only
    assert first.get("/console").status_code == 200
    # The same link again, from another browser: refused.
    second = opened(plane, browser(plane.server))
    again = second.post("/console/login", data={"token": token})
    assert again.status_code == 401
    assert COOKIE not in second.cookies
    # Unknown, malformed and expired links sign nobody in.
    for bad in ("wlogin_" + "x" * 43, "nonsense", "wlogin_" + "y" * 500, ""):
        assert second.post("/console/login", data={"token": bad}).status_code == 401
    stale = Console.link_for(setup.authority, "qa", by="test")
    with setup.authority.store.begin() as conn:
        conn.execute(
            update(schema.console_links).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert second.post("/console/login", data={"token": stale}).status_code == 401
    # From another site's page: refused before the link is looked at.
    third = Console.link_for(setup.authority, "qa", by="test")
    cross = second.post(
        "/console/login", data={"token": third}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert second.post("/console/login", data={"token": third}).status_code == 303
    # No link for an operator who does not exist or is revoked.
    with pytest.raises(Exception, match="nobody"):
        Console.link_for(setup.authority, "nobody", by="test")
    entries = console_entries(setup, plane)
    assert any(e["action"] == "console.sign_in" and e["outcome"] == "refused" for e in entries)
    assert any(e.get("operator") == "qa" and e["outcome"] == "signed in" for e in entries)


def test_sessions_end_when_idle_at_sign_out_and_with_the_operator(
    stack: tuple[DlpSetup, Plane],
) -> None:
    setup, plane = stack
    client = opened(plane, sign_in(plane.server, setup.authority, "qa"))
    assert client.get("/console/agents").status_code == 200
    # Idle longer than console_session_idle_s: gone.
    with setup.authority.store.begin() as conn:
        conn.execute(
            update(schema.console_sessions).values(last_seen_at=utcnow() - timedelta(hours=1))
        )
    assert client.get("/console/agents").status_code == 303
    # Signed out: the cookie is worth nothing after, even if kept.
    client = opened(plane, sign_in(plane.server, setup.authority, "qa"))
    kept = client.cookies[COOKIE]
    csrf = csrf_of(client)
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
    client.cookies.set(COOKIE, kept)
    assert client.get("/console/agents").status_code == 303
    # The operator revoked: its session stops at the next request.
    client = opened(plane, sign_in(plane.server, setup.authority, "sam"))
    assert client.get("/console").status_code == 200
    setup.authority.operators.revoke("sam")
    assert client.get("/console").status_code == 303


def test_state_changes_need_the_csrf_token_and_the_same_origin(
    stack: tuple[DlpSetup, Plane],
) -> None:
    setup, plane = stack
    client = opened(plane, sign_in(plane.server, setup.authority, "qa"))
    csrf = csrf_of(client)
    path = "/console/agents/invoice-bot/quarantine"
    assert client.post(path, data={}).status_code == 403
    assert client.post(path, data={"csrf": "wrong"}).status_code == 403
    other = client.post(path, data={"csrf": csrf}, headers={"origin": "https://evil.example"})
    assert other.status_code == 403
    site = client.post(path, data={"csrf": csrf}, headers={"sec-fetch-site": "cross-site"})
    assert site.status_code == 403
    assert setup.authority.agents.get("invoice-bot").status == "active"
    # Another session's token does not do either.
    other_session = opened(plane, sign_in(plane.server, setup.authority, "qa"))
    assert other_session.post(path, data={"csrf": csrf}).status_code == 403
    done = client.post(path, data={"csrf": csrf, "reason": "looks odd"})
    assert (done.status_code, done.headers["location"]) == (303, "/console/agents/invoice-bot")
    agent = setup.authority.agents.get("invoice-bot")
    assert agent.status == "quarantined" and "looks odd" in agent.status_reason
    (entry,) = [e for e in console_entries(setup, plane) if e["action"] == "agent.quarantine"]
    assert entry["outcome"] == "done" and entry["operator"] == "qa" and entry["allowed"]
    assert entry["policies"] == ["operators-manage-agents"]
    assert entry["detail"] == {"reason": "looks odd"}


def test_the_admin_pack_decides_every_page_and_action(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    auditor = opened(plane, sign_in(plane.server, setup.authority, "ida"))
    for path in ("/console", "/console/agents", "/console/decisions", "/console/flows"):
        assert auditor.get(path).status_code == 200, path
    assert auditor.get("/console/agents/invoice-bot").status_code == 200
    confirm = auditor.get("/console/agents/invoice-bot/quarantine")
    assert confirm.status_code == 403 and "may not agent.quarantine" in confirm.text
    csrf = csrf_of(auditor)
    refused = auditor.post("/console/agents/invoice-bot/revoke", data={"csrf": csrf})
    assert refused.status_code == 403
    assert setup.authority.agents.get("invoice-bot").status == "active"
    page = auditor.get("/console/agents/invoice-bot").text
    assert "Quarantine…" not in page  # an action the role may not take is not offered
    approver = opened(plane, sign_in(plane.server, setup.authority, "sam"))
    assert approver.get("/console/decisions").status_code == 403  # no audit.read
    assert approver.get("/console/policies").status_code == 403
    assert approver.get("/console/incidents").status_code == 200
    refusals = [e for e in console_entries(setup, plane) if e["outcome"] == "refused"]
    actions = {(e["operator"], e["action"]) for e in refusals}
    assert ("ida", "agent.revoke") in actions and ("ida", "agent.quarantine") in actions
    assert ("sam", "audit.read") in actions
    assert all(not e["allowed"] for e in refusals)


def test_every_page_shows_real_data(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    with setup.client("invoice-bot") as agent:
        assert agent.get("/ledger/invoices").status_code == 200
        denied = agent.get("/ehr/patients")  # finance agent, PHI route: denied
        assert denied.status_code == 403
    decision_id = denied.json()["decision_id"]
    setup.gateway.recorder.checkpoint()
    client = opened(plane, sign_in(plane.server, setup.authority, "qa"))
    overview = client.get("/console")
    assert overview.status_code == 200
    assert 'data-checkpoint="verified"' in overview.text
    assert 'data-status="active">3<' in overview.text
    agents = client.get("/console/agents").text
    assert 'data-agent="invoice-bot"' in agents and "nurse-bot" in agents
    one = client.get("/console/agents/invoice-bot").text
    assert decision_id in one and "Quarantine…" in one and "Credential epoch" in one
    assert client.get("/console/agents/nobody").status_code == 404
    decisions = client.get("/console/decisions", params={"decision": "deny"}).text
    assert decision_id in decisions and "Endpoint::ledger/x" not in decisions
    assert decisions.count("sse-connect=") == 1 and decisions.count("<html") == 1
    assert client.get("/console/decisions", params={"decision": "maybe"}).status_code == 400
    by_class = client.get("/console/decisions", params={"data_class": "phi"}).text
    assert decision_id in by_class
    detail = client.get(f"/console/decisions/{decision_id}")
    assert detail.status_code == 200
    assert 'data-proof="verified"' in detail.text and "Endpoint::ehr/x" in detail.text
    assert client.get("/console/decisions/not-a-decision").status_code == 404
    flows = client.get("/console/flows").text
    assert "<svg" in flows and "1 denied" in flows and "invoice-bot" in flows
    policies = client.get("/console/policies").text
    assert "Active bundle" in policies and "No bundle has been rejected" in policies
    incidents = client.get("/console/incidents")
    assert incidents.status_code == 200 and "No approvals." in incidents.text
    headers = overview.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    static = client.get("/console/static/htmx.min.js")
    assert static.status_code == 200 and b"htmx" in static.content


def test_the_live_stream_carries_new_decisions(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    client = opened(plane, sign_in(plane.server, setup.authority, "ida"))
    page = client.get("/console/decisions", params={"agent": "triage-bot"}).text
    stream_url = page.split('sse-connect="')[1].split('"')[0].replace("&amp;", "&")
    seen: list[str] = []
    with (
        client.stream("GET", stream_url, headers={"accept": "text/event-stream"}) as stream,
        setup.client("invoice-bot") as invoice,
        setup.client("triage-bot") as triage,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert invoice.get("/ledger/invoices").status_code == 200  # filtered out
        answer = triage.get("/ehr/patients")
        wanted = answer.headers["x-warden-decision-id"]
        deadline = time.monotonic() + 5
        for line in stream.iter_lines():
            seen.append(line)
            if wanted in line or time.monotonic() > deadline:
                break
    text = "\n".join(seen)
    assert "event: decision" in text and wanted in text
    assert "invoice-bot" not in text


def test_approvals_and_incidents_in_the_console(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    engine = setup.gateway.response
    assert engine is not None
    engine.trigger("contain", "nurse-bot", by="test", reason="drill")
    engine.wait_idle()
    owner = opened(plane, sign_in(plane.server, setup.authority, "qa"))
    page = owner.get("/console/incidents").text
    assert "contained by hand" in page
    incident_id = page.split('data-incident="')[1].split('"')[0]
    csrf = csrf_of(owner)
    missing = owner.post(f"/console/incidents/{incident_id}/resolve", data={"csrf": csrf})
    assert missing.status_code == 400
    resolved = owner.post(
        f"/console/incidents/{incident_id}/resolve",
        data={"csrf": csrf, "resolution": "a drill"},
    )
    assert resolved.status_code == 303
    assert engine.incidents.get(incident_id).status == "resolved"
    # A release asked for in the console parks for approval; an approver approves it there.
    sam = opened(plane, sign_in(plane.server, setup.authority, "sam"))
    engine.trigger("release-after-review", "nurse-bot", by="test", reason="reviewed")
    engine.wait_idle()
    (approval,) = engine.approvals.list(status="pending", agent="nurse-bot")
    ida = opened(plane, sign_in(plane.server, setup.authority, "ida"))
    refused = ida.post(f"/console/approvals/{approval.id}/approve", data={"csrf": csrf_of(ida)})
    assert refused.status_code == 403
    approved = sam.post(
        f"/console/approvals/{approval.id}/approve", data={"csrf": csrf_of(sam, "/console")}
    )
    assert approved.status_code == 303
    assert engine.approvals.get(approval.id).status == "approved"
    deadline = time.monotonic() + 5
    while setup.authority.agents.get("nurse-bot").status != "active":
        assert time.monotonic() < deadline, "the approved release was not carried out"
        time.sleep(0.05)
    entries = console_entries(setup, plane)
    done = {(e["operator"], e["action"], e["outcome"]) for e in entries}
    assert ("qa", "incident.resolve", "done") in done
    assert ("sam", "approval.decide", "done") in done
    assert ("ida", "approval.decide", "refused") in done
    assert json.dumps(entries)  # plain JSON throughout


def test_the_live_stream_ends_when_the_session_does(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    client = opened(plane, sign_in(plane.server, setup.authority, "ida"))
    csrf = csrf_of(client, "/console")
    other = opened(plane, browser(plane.server))
    other.cookies.set(COOKIE, client.cookies[COOKIE])  # the same session, another tab
    lines: list[str] = []
    with other.stream("GET", "/console/decisions/stream") as stream:
        assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
        for line in stream.iter_lines():  # ends by itself: the server closes it
            lines.append(line)
    assert "event: ended" in lines
