"""SPIFFE IDs as the SPIFFE ID specification defines them, and Warden's naming of principals.

``spiffe://<trust-domain>/<path>``: a lowercase trust domain of ``[a-z0-9._-]``, no port, no
userinfo, no query or fragment, path segments of ``[A-Za-z0-9._-]`` that are neither empty,
``.`` nor ``..``, no trailing slash, at most 2048 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from warden.identity.errors import InvalidName, InvalidSpiffeId

SCHEME = "spiffe://"
MAX_LENGTH = 2048
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Names of agents, services and operators: one path segment, DNS-label-like, lowercase.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")

PrincipalKind = Literal["agent", "svc", "operator"]
PRINCIPAL_KINDS: tuple[PrincipalKind, ...] = ("agent", "svc", "operator")


def validate_trust_domain(value: str) -> str:
    """Return ``value`` if it is a valid trust domain name, else raise :class:`InvalidSpiffeId`."""
    if not value:
        raise InvalidSpiffeId(value, "trust domain is empty")
    if len(value) > 255:
        raise InvalidSpiffeId(value, "trust domain is longer than 255 characters")
    if not _TRUST_DOMAIN.fullmatch(value):
        raise InvalidSpiffeId(value, "trust domain may hold only a-z, 0-9, '.', '-' and '_'")
    return value


def validate_name(value: str) -> str:
    """Return ``value`` if it fits Warden's principal naming rule, else raise InvalidName."""
    if not _NAME.fullmatch(value):
        raise InvalidName(
            value,
            "use 1-63 characters of a-z, 0-9, '.', '-', '_', starting and ending with a letter "
            "or digit",
        )
    return value


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed, valid SPIFFE ID."""

    trust_domain: str
    path: str  # "" or "/seg/seg"

    @classmethod
    def parse(cls, value: str) -> SpiffeId:
        """Parse ``value``; raise :class:`InvalidSpiffeId` saying which rule it breaks."""
        if not isinstance(value, str):
            raise InvalidSpiffeId(repr(value), "not a string")
        if len(value.encode()) > MAX_LENGTH:
            raise InvalidSpiffeId(value, f"longer than {MAX_LENGTH} bytes")
        if not value.startswith(SCHEME):
            raise InvalidSpiffeId(value, "scheme must be 'spiffe' (lowercase) with '//'")
        rest = value[len(SCHEME) :]
        if "?" in rest or "#" in rest:
            raise InvalidSpiffeId(value, "query and fragment are not allowed")
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            raise InvalidSpiffeId(value, "userinfo is not allowed")
        if ":" in authority:
            raise InvalidSpiffeId(value, "a port is not allowed")
        validate_trust_domain(authority)
        if not slash:
            return cls(authority, "")
        segments = path.split("/")
        for segment in segments:
            if segment == "":
                raise InvalidSpiffeId(value, "empty path segment or trailing slash")
            if segment in (".", ".."):
                raise InvalidSpiffeId(value, "'.' and '..' path segments are not allowed")
            if not _SEGMENT.fullmatch(segment):
                raise InvalidSpiffeId(value, "path may hold only A-Z, a-z, 0-9, '.', '-', '_'")
        return cls(authority, "/" + path)

    @classmethod
    def for_principal(cls, trust_domain: str, kind: PrincipalKind, name: str) -> SpiffeId:
        """``spiffe://<td>/<kind>/<name>`` after checking both parts."""
        validate_trust_domain(trust_domain)
        validate_name(name)
        return cls(trust_domain, f"/{kind}/{name}")

    @property
    def kind(self) -> PrincipalKind | None:
        """The Warden principal kind (agent, svc, operator) if the path is Warden-shaped."""
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] in PRINCIPAL_KINDS:
            return parts[1]
        return None

    @property
    def name(self) -> str | None:
        """The principal's name if the path is Warden-shaped."""
        return self.path.split("/")[2] if self.kind is not None else None

    def member_of(self, trust_domain: str) -> bool:
        return self.trust_domain == trust_domain

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}{self.path}"
