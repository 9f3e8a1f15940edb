"""For Python services behind Warden: verify the ``X-Warden-Decision`` header.

    verifier = DecisionVerifier.from_bundle_file("bundle.pem",
                                                 my_id="spiffe://example.org/svc/ledger")
    claims = verifier.verify(request.headers["X-Warden-Decision"], method, path_and_query, body)

It checks that a Warden enforcement point of this trust domain signed it (its ``x5c`` chain
verifies to the bundle and its key signed the token), that it is meant for this service, this
method, this path and this body, that it is fresh, and that it was never seen before.
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification

from warden.enforce.decision_header import MAX_LIFETIME_S, body_hash
from warden.errors import UntrustedInputError
from warden.identity.errors import InvalidSpiffeId
from warden.identity.spiffe_id import SpiffeId

REPLAY_LIMIT = 1_000_000


class DecisionRejected(UntrustedInputError):
    """The decision header is missing, forged, stale, replayed or for another request."""

    code = "decision_rejected"
    public_message = "forbidden"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}", code=code)


class DecisionVerifier:
    def __init__(
        self,
        roots: list[x509.Certificate],
        my_id: str,
        *,
        allowed_gateways: set[str] | None = None,
        skew_s: int = 5,
    ) -> None:
        self._store = verification.Store(roots)
        self._my_id = my_id
        self._trust_domain = SpiffeId.parse(my_id).trust_domain
        self._allowed = allowed_gateways
        self._skew = skew_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_bundle_file(cls, path: Path | str, my_id: str, **kwargs: Any) -> DecisionVerifier:
        roots = x509.load_pem_x509_certificates(Path(path).read_bytes())
        return cls(roots, my_id, **kwargs)

    def verify(self, token: str | None, method: str, path: str, body: bytes) -> dict[str, Any]:
        """The header's claims, or :class:`DecisionRejected` saying which check failed."""
        if not token:
            raise DecisionRejected("missing", "no X-Warden-Decision header")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise DecisionRejected("malformed", str(exc)) from exc
        if header.get("alg") != "ES256":
            raise DecisionRejected("alg_not_allowed", f"alg {header.get('alg')!r}")
        gateway_id, key = self._signer(header.get("x5c"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=self._my_id,
                leeway=self._skew,
                options={
                    "require": ["iss", "aud", "sub", "exp", "iat", "jti", "htm", "htu", "bh", "wdn"]
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise DecisionRejected("wrong_audience", str(exc)) from exc
        except jwt.ExpiredSignatureError as exc:
            raise DecisionRejected("expired", str(exc)) from exc
        except jwt.PyJWTError as exc:
            raise DecisionRejected("invalid", str(exc)) from exc
        if claims["iss"] != gateway_id:
            raise DecisionRejected("wrong_issuer", "iss is not the signing certificate's ID")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME_S:
            raise DecisionRejected("too_long_lived", "a decision header lives at most 30 s")
        if claims["htm"] != method.upper() or claims["htu"] != path:
            raise DecisionRejected("wrong_request", "the header is for another method or path")
        if claims["bh"] != body_hash(body):
            raise DecisionRejected("wrong_body", "the body is not the one that was decided")
        self._remember(str(claims["jti"]), float(claims["exp"]))
        return claims

    def _signer(self, x5c: Any) -> tuple[str, ec.EllipticCurvePublicKey]:
        if not isinstance(x5c, list) or not x5c or len(x5c) > 4:
            raise DecisionRejected("no_chain", "the header carries no x5c chain")
        try:
            chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
        except (ValueError, TypeError) as exc:
            raise DecisionRejected("bad_chain", "x5c does not hold certificates") from exc
        try:
            verifier = verification.PolicyBuilder().store(self._store).build_client_verifier()
            verifier.verify(chain[0], chain[1:])
        except verification.VerificationError as exc:
            raise DecisionRejected("untrusted", str(exc)) from exc
        sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
        try:
            signer = SpiffeId.parse(uris[0]) if len(uris) == 1 else None
        except InvalidSpiffeId:
            signer = None
        if signer is None or signer.kind != "svc" or signer.trust_domain != self._trust_domain:
            raise DecisionRejected("not_a_gateway", "the signer is not a Warden service")
        if self._allowed is not None and str(signer) not in self._allowed:
            raise DecisionRejected("not_a_gateway", f"{signer} is not an allowed gateway")
        key = chain[0].public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise DecisionRejected("bad_chain", "the signer's key is not ECDSA")
        return str(signer), key

    def _remember(self, jti: str, expires: float) -> None:
        now = time.time()
        with self._lock:
            if jti in self._seen:
                raise DecisionRejected("replayed", "this decision header was already used")
            if len(self._seen) >= REPLAY_LIMIT:
                self._seen = {k: v for k, v in self._seen.items() if v + self._skew > now}
                if len(self._seen) >= REPLAY_LIMIT:
                    raise DecisionRejected("replay_cache_full", "too many live headers")
            self._seen[jti] = expires


class RequireDecision:
    """ASGI middleware for a service behind Warden: every HTTP request must carry a valid
    ``X-Warden-Decision`` for exactly its method, path and body, or it is refused with 403
    before the application sees it.

        app = RequireDecision(app, DecisionVerifier.from_bundle_file("bundle.pem", my_id=...))
    """

    def __init__(self, app: Any, verifier: DecisionVerifier, max_body_bytes: int = 8 << 20):
        self.app = app
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > self.max_body_bytes:
                await _refuse(send, "body_too_large")
                return
        token = None
        for key, value in scope["headers"]:
            if key == b"x-warden-decision":
                token = value.decode("latin-1")
        query = scope.get("query_string", b"")
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1") + (
            "?" + query.decode("latin-1") if query else ""
        )
        try:
            claims = self.verifier.verify(token, scope["method"], path, body)
        except DecisionRejected as exc:
            await _refuse(send, exc.code)
            return
        # The application may read who was decided for: ``scope["warden.decision"]["sub"]``.
        scope = {**scope, "warden.decision": claims}
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


async def _refuse(send: Any, code: str) -> None:
    body = ('{"error":"' + code + '"}').encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
