"""A small OpenID provider on 127.0.0.1 over TLS, for the console's sign-in tests.

It speaks the authorization code flow with PKCE (S256) and client_secret_basic: discovery, an
authorization endpoint that signs in whoever ``user`` names (no login form: the test is the
person), a token endpoint that checks the code, the redirect URI, the client's secret and the
PKCE verifier, and the key set. ID tokens are RS256, signed with joserfc. Knobs make it
misbehave the way a hostile or broken provider would.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from warden.identity.authority import IdentityAuthority
from warden.identity.ca.keys import write_private_file
from warden.transport import serving

CLIENT_ID = "warden-console"
CLIENT_SECRET = "s3cret-" + "x" * 24


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    user: str


@dataclass
class OidcProvider:
    authority: IdentityAuthority
    directory: Path
    user: str = "alice"
    redirect_uris: list[str] = field(default_factory=list)
    # Misbehaviour: sign with a key the provider does not publish; another audience; another
    # nonce; an expired token.
    rogue_key: bool = False
    audience: str = CLIENT_ID
    nonce_override: str | None = None
    expired: bool = False
    codes: dict[str, _Code] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.other = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})

    # -- serving -------------------------------------------------------------------------------

    def start(self) -> OidcProvider:
        issued = self.authority.issuer.issue_service_x509(
            "oidc-test", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert, self.keyfile = self.directory / "cert.pem", self.directory / "key.pem"
        self.ca_file = self.directory / "ca.pem"
        write_private_file(self.cert, issued.cert_chain_pem())
        write_private_file(self.keyfile, issued.key_pem())
        write_private_file(self.ca_file, self.authority.ca.bundle.to_pem())
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            ssl_certfile=str(self.cert),
            ssl_keyfile=str(self.keyfile),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread, self.port = serving.start_in_thread(
            self._server, self._server.serve, "oidc-provider"
        )
        return self

    def stop(self) -> None:
        serving.stop(self._server, self._thread)

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- endpoints -----------------------------------------------------------------------------

    async def discovery(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, _: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") not in self.redirect_uris:
            return JSONResponse({"error": "invalid_client"}, 400)
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, 400)
        if "openid" not in (q.get("scope") or "").split():
            return JSONResponse({"error": "invalid_scope"}, 400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            CLIENT_ID, q["redirect_uri"], q.get("code_challenge", ""), q.get("nonce", ""), self.user
        )
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, 401)
        form = await request.form()
        code = str(form.get("code", ""))
        found = self.codes.pop(code, None)
        if found is None or code in self.used_codes:
            return JSONResponse({"error": "invalid_grant"}, 400)
        self.used_codes.add(code)
        if form.get("redirect_uri") != found.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if challenge != found.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        access = secrets.token_urlsafe(24)
        now = int(time.time()) - (7200 if self.expired else 0)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"user-{found.user}",
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce_override or found.nonce,
            "preferred_username": found.user,
            "at_hash": _at_hash(access),
        }
        key = self.other if self.rogue_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
