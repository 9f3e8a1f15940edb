"""SCIM 2.0 over HTTP against the live control plane: the conformance checker, each RFC 7644
operation, the errors (in SCIM's format, leaving nothing behind), authentication, and the
lifecycle an identity provider drives: created and able to attest at once, disabled,
regrouped and deleted, each seen by the gateway on the agent's next request."""

from __future__ import annotations

import os
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.creds import context_for, write_svid
from tests.support.upstream import FINANCE, Upstream, ledger_routes
from warden.audit.reader import LogReader
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority
from warden.policy.workorders import WorkOrderStore
from warden.scim.tokens import ScimTokens
from warden.server.run import ControlPlaneServer

AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"
WARDEN = "urn:warden:scim:schemas:extension:2.0:Agent"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class Scim:
    authority: IdentityAuthority
    plane: ControlPlaneServer
    token: str
    root: Path

    @property
    def base(self) -> str:
        return self.plane.url.replace("127.0.0.1", "localhost") + "/scim/v2"

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"} if token != "" else {}
        return httpx.Client(
            base_url=self.base,
            verify=ssl.create_default_context(cafile=str(self.plane.credentials.ca_file)),
            headers=headers,
            timeout=10,
            **kw,
        )

    def operator(self, name: str, role: str) -> httpx.Client:
        self.authority.operators.add(name, role=role, created_by="test")  # type: ignore[arg-type]
        issued = self.authority.issuer.issue_operator_x509(name)
        creds = write_svid(self.root / name, issued, self.authority.ca.bundle.to_pem())
        return httpx.Client(
            base_url=self.base,
            verify=context_for(creds, self.plane.credentials.ca_file),
            timeout=10,
        )


@pytest.fixture
def scim(authority: IdentityAuthority, tmp_path: Path) -> Iterator[Scim]:
    plane = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    token = ScimTokens(authority.store).create("okta", by="test")
    try:
        yield Scim(authority, plane, token, tmp_path)
    finally:
        plane.stop()


def agent(name: str, **extra: Any) -> dict[str, Any]:
    warden = {"owner": "finance-team", **extra.pop("warden", {})}
    return {"schemas": [AGENT, WARDEN], "name": name, "active": True, WARDEN: warden, **extra}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


def test_the_live_endpoint_passes_the_conformance_checker(scim: Scim) -> None:
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    context = ssl.create_default_context(cafile=str(scim.plane.credentials.ca_file))
    http = httpx2.Client(
        base_url=scim.base, verify=context, headers={"Authorization": f"Bearer {scim.token}"}
    )
    with http:  # closed before the server stops, or the server waits for it
        results = check_server(SyncSCIMClient(http))
    failed = [(r.title, r.resource_type, r.reason) for r in results if r.status != Status.SUCCESS]
    assert failed == []
    checked = {r.resource_type for r in results}
    assert {"Agent", "Group"} <= checked
    assert len(results) >= 70


def test_discovery(scim: Scim) -> None:
    with scim.client() as c:
        config = c.get("/ServiceProviderConfig")
        assert config.headers["content-type"].startswith("application/scim+json")
        spc = config.json()
        assert spc["patch"]["supported"] and spc["filter"]["supported"]
        assert spc["sort"]["supported"] and spc["etag"]["supported"]
        assert not spc["bulk"]["supported"] and not spc["changePassword"]["supported"]
        assert spc["filter"]["maxResults"] == 200
        types = {t["name"]: t for t in c.get("/ResourceTypes").json()["Resources"]}
        assert types["Agent"]["endpoint"] == "/Agents"
        assert types["Agent"]["schemaExtensions"] == [{"schema": WARDEN, "required": True}]
        assert types["Group"]["schema"] == GROUP
        schemas = {s["id"]: s for s in c.get("/Schemas").json()["Resources"]}
        assert set(schemas) == {AGENT, WARDEN, GROUP}
        spiffe = next(a for a in schemas[WARDEN]["attributes"] if a["name"] == "spiffeId")
        assert spiffe["mutability"] == "readOnly"
        error(c.get("/Users"), 404)


def test_create_read_search_sort_page_and_select(scim: Scim) -> None:
    with scim.client() as c:
        made = {}
        for name, owner in (("alpha-bot", "ops"), ("beta-bot", "finance"), ("gamma-svc", "ops")):
            answer = c.post("/Agents", json=agent(name, warden={"owner": owner}))
            assert answer.status_code == 201, answer.text
            assert answer.headers["location"] == f"{scim.base}/Agents/{answer.json()['id']}"
            assert answer.headers["etag"] == answer.json()["meta"]["version"]
            made[name] = answer.json()
        one = c.get(f"/Agents/{made['beta-bot']['id']}").json()
        assert one["name"] == "beta-bot" and one[WARDEN]["owner"] == "finance"
        assert "spiffeId" not in one[WARDEN]  # returned on request

        def names(params: dict[str, Any]) -> list[str]:
            found = c.get("/Agents", params=params)
            assert found.status_code == 200, found.text
            return [r["name"] for r in found.json()["Resources"]]

        assert names({"filter": 'name eq "beta-bot"'}) == ["beta-bot"]
        assert sorted(names({"filter": 'name ne "beta-bot"'})) == ["alpha-bot", "gamma-svc"]
        assert sorted(names({"filter": 'name co "bot"'})) == ["alpha-bot", "beta-bot"]
        assert names({"filter": 'name sw "gam"'}) == ["gamma-svc"]
        assert names({"filter": 'name ew "-svc"'}) == ["gamma-svc"]
        assert len(names({"filter": "name pr"})) == 3
        assert names({"filter": 'name gt "beta-bot"'}) == ["gamma-svc"]
        assert sorted(names({"filter": 'name ge "beta-bot"'})) == ["beta-bot", "gamma-svc"]
        assert names({"filter": 'name lt "beta-bot"'}) == ["alpha-bot"]
        assert sorted(names({"filter": 'name le "beta-bot"'})) == ["alpha-bot", "beta-bot"]
        owner = f'{WARDEN}:owner eq "ops"'
        assert sorted(names({"filter": owner})) == ["alpha-bot", "gamma-svc"]
        both = f'({owner} and name co "bot") or name eq "beta-bot"'
        assert sorted(names({"filter": both})) == ["alpha-bot", "beta-bot"]
        assert names({"filter": f"not ({owner}) and active eq true"}) == ["beta-bot"]
        assert names({"sortBy": "name", "sortOrder": "descending"}) == [
            "gamma-svc",
            "beta-bot",
            "alpha-bot",
        ]
        page = c.get("/Agents", params={"sortBy": "name", "startIndex": 2, "count": 1}).json()
        assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (3, 2, 1)
        assert [r["name"] for r in page["Resources"]] == ["beta-bot"]
        listed = c.get("/Agents", params={"filter": 'name eq "alpha-bot"', "attributes": "name"})
        assert set(listed.json()["Resources"][0]) == {"schemas", "id", "name"}
        spiffe = c.get(
            "/Agents", params={"filter": 'name eq "alpha-bot"', "attributes": f"{WARDEN}:spiffeId"}
        ).json()["Resources"][0]
        assert spiffe[WARDEN]["spiffeId"].endswith("/agent/alpha-bot")  # returned: request
        selected = c.get(
            f"/Agents/{made['alpha-bot']['id']}", params={"attributes": f"name,{WARDEN}:spiffeId"}
        ).json()
        assert set(selected) == {"schemas", "id", "name", WARDEN}
        spiffe_id = f"spiffe://{scim.authority.trust_domain}/agent/alpha-bot"
        assert selected[WARDEN] == {"spiffeId": spiffe_id}
        trimmed = c.get(f"/Agents/{made['alpha-bot']['id']}", params={"excludedAttributes": WARDEN})
        assert WARDEN not in trimmed.json()
        searched = c.post(
            "/Agents/.search",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": 'name sw "a"',
            },
        )
        assert searched.status_code == 200 and searched.json()["totalResults"] == 1


def test_replace_patch_and_preconditions(scim: Scim) -> None:
    with scim.client() as c:
        made = c.post("/Agents", json=agent("ledger-bot", warden={"purpose": "reconcile"})).json()
        url, etag = f"/Agents/{made['id']}", made["meta"]["version"]
        labels = [{"key": "team", "value": "finance"}]
        replaced = c.put(
            url,
            json=agent("ledger-bot", displayName="Ledger", warden={"labels": labels}),
            headers={"If-Match": etag},
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["displayName"] == "Ledger"
        assert scim.authority.agents.get("ledger-bot").labels == {"team": "finance"}
        stale = c.put(url, json=agent("ledger-bot"), headers={"If-Match": etag})
        error(stale, 412)
        renamed = c.put(url, json=agent("other-name"))
        error(renamed, 400)
        added = c.patch(
            url,
            json=patch({"op": "add", "path": f"{WARDEN}:selectors", "value": ["unix:uid:4242"]}),
        )
        assert added.status_code in (200, 204), added.text
        assert scim.authority.agents.get("ledger-bot").selectors == ["unix:uid:4242"]
        removed = c.patch(url, json=patch({"op": "remove", "path": "displayName"}))
        assert removed.status_code in (200, 204)
        assert "displayName" not in c.get(url).json()
        error(c.patch(url, json=patch({"op": "explode", "path": "name"})), 400)
        error(c.patch(url, json=patch({"op": "replace", "path": "bogus", "value": 1})), 400)


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        ({**agent("x1"), "schemas": ["urn:example:wrong"]}, 400, "invalidSyntax"),
        ({**agent("x2"), "unknownAttribute": 1}, 400, "invalidSyntax"),
        ({**agent("x3"), "active": {"not": "a boolean"}}, 400, "invalidValue"),
        (agent("Not A Name!"), 400, "invalidValue"),
        ({"schemas": [AGENT, WARDEN], "name": "x4", "active": True}, 400, None),  # no owner
        ({"schemas": [AGENT, WARDEN], WARDEN: {"owner": "o"}, "active": True}, 400, None),
    ],
)
def test_bad_bodies_get_scim_errors_and_leave_nothing(
    scim: Scim, body: dict[str, Any], status: int, scim_type: str | None
) -> None:
    before = len(scim.authority.agents.list())
    with scim.client() as c:
        error(c.post("/Agents", json=body), status, scim_type)
    assert len(scim.authority.agents.list()) == before


def test_other_bad_requests(scim: Scim) -> None:
    with scim.client() as c:
        assert c.post("/Agents", json=agent("dup-bot")).status_code == 201
        error(c.post("/Agents", json=agent("dup-bot")), 409, "uniqueness")
        error(c.get("/Agents", params={"filter": "name eq"}), 400, "invalidFilter")
        error(c.get("/Agents", params={"filter": 'name xx "a"'}), 400, "invalidFilter")
        error(c.get("/Agents/no-such-id"), 404)
        error(
            c.post(
                "/Agents", content=b"{not json", headers={"content-type": "application/scim+json"}
            ),
            400,
        )
        big = b'{"schemas": [], "pad": "' + b"x" * 300_000 + b'"}'
        error(
            c.post("/Agents", content=big, headers={"content-type": "application/scim+json"}), 413
        )
        error(c.post("/Groups", json={"schemas": [GROUP], "displayName": "Bad Group"}), 400)
        error(
            c.post(
                "/Groups",
                json={
                    "schemas": [GROUP],
                    "displayName": "finance",
                    "members": [{"value": "nobody"}],
                },
            ),
            400,
        )
        assert c.get("/Groups").json()["totalResults"] == 0  # nothing half-made
    assert [a.name for a in scim.authority.agents.list()] == ["dup-bot"]


def test_authentication(scim: Scim) -> None:
    tokens = ScimTokens(scim.authority.store)
    with scim.client(token="") as anonymous:
        error(anonymous.get("/Agents"), 401)
    with scim.client(token="wscim_forged") as forged:
        error(forged.get("/Agents"), 401)
    other = tokens.create("entra", by="test")
    with scim.client(token=other) as c:
        assert c.get("/Agents").status_code == 200
    rotated = tokens.rotate("entra", by="test")
    with scim.client(token=other) as c:
        error(c.get("/Agents"), 401)
    with scim.client(token=rotated) as c:
        assert c.get("/Agents").status_code == 200
    tokens.revoke("entra")
    with scim.client(token=rotated) as c:
        error(c.get("/Agents"), 401)
    # The token is for SCIM only: the rest of the control plane does not take it.
    context = ssl.create_default_context(cafile=str(scim.plane.credentials.ca_file))
    with httpx.Client(verify=context, timeout=10) as plain:
        url = scim.plane.url.replace("127.0.0.1", "localhost") + "/v1/agents"
        assert plain.get(url, headers={"Authorization": f"Bearer {scim.token}"}).status_code == 401
    # Operators over mutual TLS, as the admin pack allows.
    with scim.operator("olga", "operator") as operator:
        assert operator.get("/Agents").status_code == 200
    with scim.operator("audrey", "auditor") as auditor:
        error(auditor.get("/Agents"), 403)
    assert {t.name for t in tokens.list() if t.revoked_at} == {"entra"}


def test_the_lifecycle_an_identity_provider_drives(scim: Scim, tmp_path: Path) -> None:
    authority = scim.authority
    upstream = Upstream(authority, tmp_path).start()
    gateway = GatewayServer(
        authority, routes=ledger_routes(upstream, FINANCE), host="127.0.0.1", port=0
    ).start_in_thread()
    try:
        with scim.client() as c:
            selectors = [f"unix:uid:{os.getuid()}", f"unix:path:{os.path.realpath(sys.executable)}"]
            made = c.post("/Agents", json=agent("idp-bot", warden={"selectors": selectors}))
            assert made.status_code == 201, made.text
            url = f"/Agents/{made.json()['id']}"
            # Its workload attests at once: this process presents those selectors.
            attested, _ = authority.attestor.attest(os.getpid(), os.getuid(), os.getgid())
            assert attested.name == "idp-bot"
            group = c.post(
                "/Groups",
                json={
                    "schemas": [GROUP],
                    "displayName": "finance",
                    "members": [{"value": made.json()["id"], "type": "Agent"}],
                },
            )
            assert group.status_code == 201, group.text
            assert authority.agents.get("idp-bot").groups == ["finance"]
            creds = write_svid(
                tmp_path / "idp-bot",
                authority.issuer.issue_agent_x509("idp-bot"),
                authority.ca.bundle.to_pem(),
            )
            agent_client = httpx.Client(
                base_url=gateway.url, timeout=10, verify=context_for(creds, creds / "bundle.pem")
            )
            with agent_client:
                assert agent_client.get("/ledger/x").status_code == 200
                # Out of the group: the next decision has no policy that permits it.
                gid = group.json()["id"]
                out = c.patch(
                    f"/Groups/{gid}",
                    json=patch(
                        {"op": "remove", "path": f'members[value eq "{made.json()["id"]}"]'}
                    ),
                )
                assert out.status_code in (200, 204), out.text
                assert agent_client.get("/ledger/x").status_code == 403
                back = c.patch(
                    f"/Groups/{gid}",
                    json=patch(
                        {"op": "add", "path": "members", "value": [{"value": made.json()["id"]}]}
                    ),
                )
                assert back.status_code in (200, 204), back.text
                assert agent_client.get("/ledger/x").status_code == 200
                # Disabled: the next request is refused, and so are renewals.
                off = c.patch(url, json=patch({"op": "replace", "path": "active", "value": False}))
                assert off.status_code in (200, 204)
                assert agent_client.get("/ledger/x").status_code == 401
                with pytest.raises(Exception, match=r"not active|disabled"):
                    authority.issuer.issue_agent_x509("idp-bot")
                on = c.patch(url, json=patch({"op": "replace", "path": "active", "value": True}))
                assert on.status_code in (200, 204)
                assert agent_client.get("/ledger/x").status_code == 200
                # Deleted: credentials and work orders end at once; the history stays.
                spiffe_id = authority.agents.get("idp-bot").spiffe_id
                orders = WorkOrderStore(authority.store)
                order = orders.create(
                    agent=spiffe_id,
                    ticket="CHG-1",
                    actions=["data:export"],
                    resources=["Dataset:customers"],
                    max_uses=3,
                    ttl_s=600,
                    issued_by="test",
                )
                deleted = c.delete(url)
                assert deleted.status_code == 204
                started = time.monotonic()
                refused = agent_client.get("/ledger/x")
                assert refused.status_code == 401 and time.monotonic() - started < 1.0
            assert orders.get(order.id).status == "closed"
            error(c.get(url), 404)
            assert c.get(f"/Groups/{gid}").json().get("members") is None
        gateway.recorder.checkpoint()
        history = LogReader(authority.store).search(agent=spiffe_id, kind="decision")
        # Its decisions outlive it: those it was allowed and the one out of its group.
        assert {e["decision"] for e in history} == {"allow", "deny"} and len(history) >= 4
    finally:
        gateway.stop()
        upstream.stop()
