"""The SCIM 2.0 service provider at ``/scim/v2`` on the control plane: scim2-server speaks
the protocol (discovery, CRUD, PATCH, filters, sorting, pagination, attributes, ETags, SCIM
errors), Warden authenticates the client and keeps the resources.

A client authenticates with a provisioning bearer token (scoped to SCIM: it opens nothing
else) or with an operator's SVID over mutual TLS that the admin pack lets provision.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any

from cryptography import x509
from scim2_models import (
    Context,
    ForbiddenException,
    ResourceType,
    SearchRequest,
    UnauthorizedException,
)
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope, Send
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.storage import SearchPage

from warden.identity.authority import IdentityAuthority
from warden.identity.errors import CredentialRejected
from warden.policy.admin import AdminAuthorizer, AdminPrincipal
from warden.scim.models import provider
from warden.scim.storage import WardenScimStorage
from warden.scim.tokens import ScimTokens

log = logging.getLogger("warden.scim")
MOUNT = "/scim"
MAX_BODY_BYTES = 256 * 1024
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_peer: ContextVar[list[x509.Certificate]] = ContextVar("scim_peer", default=[])  # noqa: B039


class WardenScimService(ScimService):
    """scim2-server's service, with each listed resource kept as its own projection: the
    library validates the page into a ListResponse and dumps it again without the request's
    attributes, which drops a ``returned: request`` attribute the client asked for."""

    def search_response(
        self,
        base_url: str,
        resource_types: list[ResourceType],
        page: SearchPage,
        search_request: SearchRequest[Any],
    ) -> ScimResponse:
        response = super().search_response(base_url, resource_types, page, search_request)
        if response.body is not None and "Resources" in response.body:
            response.body["Resources"] = [
                self.publish(base_url, resource).model_dump(
                    scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search_request
                )
                for resource in page.resources
            ]
        return response


class ScimApp(ASGIApplication):
    """The SCIM application; mount it at ``/scim`` (its routes are under ``/v2``)."""

    def __init__(self, authority: IdentityAuthority, authorizer: AdminAuthorizer) -> None:
        described = provider()
        # The service's cursor secret is unused: pagination is by index.
        super().__init__(WardenScimStorage(authority), described, WardenScimService(described))
        self.authority = authority
        self.authorizer = authorizer
        self.tokens = ScimTokens(authority.store)

    def check_auth(self, request: ScimRequest) -> None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            client = self.tokens.check(token.strip())
            if client is None:
                raise UnauthorizedException(detail="unknown or revoked provisioning token")
            return
        chain = _peer.get()
        if not chain:
            raise UnauthorizedException(detail="a provisioning token or a client certificate")
        operator = self._operator(chain)
        decision = self.authorizer.authorize(operator, "scim.provision", ("ControlPlane", "warden"))
        if not decision.allowed:
            raise ForbiddenException(detail="this operator may not provision")

    def _operator(self, chain: list[x509.Certificate]) -> AdminPrincipal:
        try:
            credential = self.authority.verifier.verify_x509(chain)
        except CredentialRejected as exc:
            raise UnauthorizedException(detail="credential rejected") from exc
        name = credential.spiffe_id.name or ""
        if credential.spiffe_id.kind != "operator":
            raise ForbiddenException(detail="only operators and provisioning tokens")
        operator = self.authority.operators.get(name)
        return AdminPrincipal(
            "Operator", name, str(credential.spiffe_id), {"role": operator.role, "name": name}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        tls = scope.get("extensions", {}).get("tls") or {}
        try:
            chain = [
                x509.load_pem_x509_certificate(pem.encode())
                for pem in tls.get("client_cert_chain") or []
            ]
        except ValueError:
            chain = []
        token = _peer.set(chain)
        try:
            await _bounded(super().__call__, scope, receive, send)
        finally:
            _peer.reset(token)


async def _bounded(app: Any, scope: Any, receive: Any, send: Any) -> None:
    """413 in SCIM's error format for a body over MAX_BODY_BYTES, declared or streamed."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
            await scim_error(send, 413, f"a request body holds at most {MAX_BODY_BYTES} bytes")
            return
    seen = 0

    async def limited() -> dict[str, Any]:
        nonlocal seen
        message = dict(await receive())
        seen += len(message.get("body", b""))
        if seen > MAX_BODY_BYTES:
            raise _TooLarge()
        return message

    try:
        await app(scope, limited, send)
    except _TooLarge:
        await scim_error(send, 413, f"a request body holds at most {MAX_BODY_BYTES} bytes")


class _TooLarge(Exception):
    pass


async def scim_error(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/scim+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
