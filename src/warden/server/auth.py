"""Who is calling the control plane: the verified client certificate, then the admin pack."""

from __future__ import annotations

import logging

from cryptography import x509
from fastapi import HTTPException, Request

from warden.identity.authority import IdentityAuthority
from warden.identity.errors import CredentialRejected, OperatorNotFound
from warden.policy.admin import AdminAuthorizer, AdminPrincipal

log = logging.getLogger("warden.server.auth")


def client_chain(request: Request) -> list[x509.Certificate]:
    """The client certificate chain the TLS layer verified, leaf first (may be empty)."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    try:
        return [
            x509.load_pem_x509_certificate(pem.encode())
            for pem in tls.get("client_cert_chain") or []
        ]
    except ValueError as exc:
        raise CredentialRejected("malformed_certificate", str(exc)) from exc


def authenticate(request: Request, authority: IdentityAuthority) -> AdminPrincipal:
    """The principal behind this request's client certificate. 401 when there is none."""
    chain = client_chain(request)
    if not chain:
        raise HTTPException(401, {"error": "no_client_certificate"})
    try:
        credential = authority.verifier.verify_x509(chain)
    except CredentialRejected as exc:
        log.warning("control-plane credential rejected: %s", exc.message)
        raise HTTPException(401, {"error": "credential_rejected"}) from exc
    spiffe_id = str(credential.spiffe_id)
    name = credential.spiffe_id.name or ""
    if credential.spiffe_id.kind == "operator":
        try:
            operator = authority.operators.get(name)
        except OperatorNotFound as exc:
            raise HTTPException(401, {"error": "credential_rejected"}) from exc
        return AdminPrincipal(
            "Operator", name, spiffe_id, {"role": operator.role, "name": operator.name}
        )
    if credential.spiffe_id.kind == "agent":
        return AdminPrincipal("Agent", name, spiffe_id, {"owner": ""})
    if credential.spiffe_id.kind == "svc":
        is_ep = authority.enforcement_points.is_active(spiffe_id)
        return AdminPrincipal("Service", name, spiffe_id, {"enforcement_point": is_ep})
    raise HTTPException(403, {"error": "forbidden"})


def require(
    request: Request,
    authority: IdentityAuthority,
    authorizer: AdminAuthorizer,
    action: str,
    resource: tuple[str, str],
    attrs: dict[str, str | bool] | None = None,
) -> AdminPrincipal:
    """Authenticate the caller and let the admin pack decide; 403 on a deny. ``attrs``: the
    resource's attributes where a policy reads them (an agent's owner)."""
    principal = authenticate(request, authority)
    decision = authorizer.authorize(principal, action, resource, attrs)
    if not decision.allowed:
        log.info(
            "control-plane deny: %s %s on %s:%s policies=%s errors=%s",
            principal.spiffe_id,
            action,
            *resource,
            decision.policies,
            decision.errors,
        )
        raise HTTPException(403, {"error": "forbidden"})
    return principal
