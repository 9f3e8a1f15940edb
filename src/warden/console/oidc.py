"""Signing in to the console with OpenID Connect (authorization code flow with PKCE).

authlib's OAuth 2.0 client builds the authorization request and redeems the code; the ID
token is verified with joserfc against the provider's published keys and checked with
authlib's OpenID claim rules (issuer, audience, expiry, nonce, ``at_hash``). Every flow has its
own state, nonce and PKCE verifier, kept here for a few minutes and usable once. The person
is then the operator named by one claim of the token (``console_oidc_operator_claim``); a
token naming no active operator signs nobody in. The provider is reached over TLS only,
verified against the system's roots or ``console_oidc_ca_file``.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from warden.config import Settings
from warden.errors import ConfigError, UntrustedInputError

PENDING_TTL_S = 600.0
MAX_PENDING = 1000
METADATA_TTL_S = 300.0
# Signing algorithms an ID token may use; "none" and HMAC (a shared secret) never.
ALLOWED_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")


class SignInRefused(UntrustedInputError):
    """The provider's answer does not sign anyone in; ``code`` says why, for the log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    operator_claim: str
    ca_file: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The provider the settings name, or None when none is configured."""
        if not settings.console_oidc_issuer:
            return None
        if not settings.console_oidc_client_id or not settings.console_oidc_client_secret_file:
            raise ConfigError(
                "console_oidc_issuer needs console_oidc_client_id and "
                "console_oidc_client_secret_file"
            )
        secret = settings.console_oidc_client_secret_file.read_text().strip()
        return cls(
            issuer=settings.console_oidc_issuer.rstrip("/"),
            client_id=settings.console_oidc_client_id,
            client_secret=secret,
            operator_claim=settings.console_oidc_operator_claim,
            ca_file=settings.console_oidc_ca_file,
        )


@dataclass(frozen=True)
class _Pending:
    nonce: str
    verifier: str
    redirect_uri: str
    started: float


class OidcLogin:
    """One relying party: starts flows and turns their callbacks into an operator's name."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._tls = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None
        )
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0

    @property
    def provider_name(self) -> str:
        return urlsplit(self.config.issuer).netloc

    def _client(self, redirect_uri: str) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            scope="openid profile email",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            verify=self._tls,
            timeout=10.0,
        )

    def metadata(self, *, force: bool = False) -> dict[str, Any]:
        """The provider's discovery document (cached for a few minutes)."""
        now = time.monotonic()
        if not force and self._metadata is not None and now - self._metadata_at < METADATA_TTL_S:
            return self._metadata
        url = self.config.issuer + "/.well-known/openid-configuration"
        with httpx.Client(verify=self._tls, timeout=10.0) as client:
            answer = client.get(url)
        if answer.status_code != 200:
            raise SignInRefused("provider_unavailable", f"discovery answered {answer.status_code}")
        found: dict[str, Any] = answer.json()
        if found.get("issuer", "").rstrip("/") != self.config.issuer:
            raise SignInRefused("provider_mismatch", "the discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not str(found.get(key, "")).startswith("https://"):
                raise SignInRefused("provider_mismatch", f"{key} is not an https URL")
        self._metadata, self._metadata_at = found, now
        return found

    def begin(self, redirect_uri: str) -> str:
        """The URL to send the browser to; its state, nonce and verifier are kept here.
        ``redirect_uri``: the console's callback, as registered with the provider."""
        metadata = self.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
            )
        with self._lock:
            self._expire(time.monotonic())
            if len(self._pending) >= MAX_PENDING:
                raise SignInRefused("too_many_sign_ins", "too many sign-ins under way")
            self._pending[state] = _Pending(nonce, verifier, redirect_uri, time.monotonic())
        return str(url)

    def finish(self, state: str, code: str) -> tuple[str, dict[str, Any]]:
        """The operator name the callback's code proves, and the verified ID token claims.
        The state is used up whatever happens."""
        with self._lock:
            self._expire(time.monotonic())
            pending = self._pending.pop(state, None)
        if pending is None:
            raise SignInRefused("unknown_state", "this sign-in was not started here or expired")
        metadata = self.metadata()
        with self._client(pending.redirect_uri) as client:
            try:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    code=code,
                    code_verifier=pending.verifier,
                    grant_type="authorization_code",
                )
            except Exception as exc:  # the provider refused the code, or answered nonsense
                raise SignInRefused("code_refused", f"the code was refused: {exc}") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("no_id_token", "the provider returned no ID token")
        claims = self._verify(id_token, pending.nonce, token.get("access_token"), metadata)
        name = claims.get(self.config.operator_claim)
        if not isinstance(name, str) or not name:
            raise SignInRefused(
                "no_operator_claim", f"the ID token has no {self.config.operator_claim!r} claim"
            )
        return name, claims

    def _verify(
        self, id_token: str, nonce: str, access_token: Any, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        algorithms = [
            a
            for a in metadata.get("id_token_signing_alg_values_supported", ["RS256"])
            if a in ALLOWED_ALGORITHMS
        ]
        if not algorithms:
            raise SignInRefused("bad_id_token", "the provider offers no acceptable algorithm")
        try:
            decoded = self._decode(id_token, algorithms, force=False)
        except JoseError:
            decoded = self._decode(id_token, algorithms, force=True)  # keys may have rotated
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.config.client_id}
        if isinstance(access_token, str):
            params["access_token"] = access_token
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"essential": True, "values": [self.config.issuer, self.config.issuer + "/"]}},
            params,
        )
        try:
            claims.validate(leeway=60)
        except Exception as exc:  # authlib's claim errors: wrong audience, expired, nonce...
            raise SignInRefused("bad_id_token", f"the ID token is not valid: {exc}") from exc
        return dict(claims)

    def _decode(self, id_token: str, algorithms: list[str], *, force: bool) -> Any:
        keys = self._keys(force=force)
        try:
            return jwt.decode(
                id_token,
                keys,
                algorithms=algorithms,
                registry=JWSRegistry(algorithms=algorithms, strict_check_header=False),
            )
        except JoseError:
            if force:
                raise SignInRefused(
                    "bad_id_token", "the ID token's signature does not verify"
                ) from None
            raise
        except ValueError as exc:
            raise SignInRefused("bad_id_token", f"the ID token is malformed: {exc}") from exc

    def _keys(self, *, force: bool) -> KeySet:
        with httpx.Client(verify=self._tls, timeout=10.0) as client:
            answer = client.get(self.metadata(force=force)["jwks_uri"])
        if answer.status_code != 200:
            raise SignInRefused(
                "provider_unavailable", f"the key set answered {answer.status_code}"
            )
        return KeySet.import_key_set(answer.json())

    def _expire(self, now: float) -> None:
        for state in [s for s, p in self._pending.items() if now - p.started > PENDING_TTL_S]:
            del self._pending[state]


def open_oidc(settings: Settings) -> OidcLogin | None:
    """The relying party the settings configure, or None."""
    config = OidcConfig.from_settings(settings)
    return None if config is None else OidcLogin(config)
