"""Signing and verifying policy bundles with Ed25519.

A signature covers the bundle's digest (its revision), so any change to any file breaks it.
``bundle.sig`` is JSON: ``{"digest": "sha256:...", "keyid": "...", "signature": "<base64>"}``.
The key that signs bundles belongs to whoever approves policy; Warden only needs the public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from warden.policy.bundle import SIGNATURE_FILE, BundleFiles
from warden.policy.errors import BundleRejected, PolicyPackInvalid


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_signing_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise PolicyPackInvalid("signing key", "a bundle signing key is Ed25519")
    return key


def sign_bundle(directory: Path, private_pem: bytes) -> str:
    """Write ``bundle.sig`` into a bundle directory; returns the signed digest."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise PolicyPackInvalid("signing key", "a bundle signing key is Ed25519")
    digest = BundleFiles.read(directory).digest()
    signature = key.sign(digest.encode())
    (directory / SIGNATURE_FILE).write_text(
        json.dumps(
            {
                "digest": digest,
                "keyid": key_id(key.public_key()),
                "signature": base64.b64encode(signature).decode(),
            },
            indent=2,
        )
        + "\n"
    )
    return digest


def verify_signature(files: BundleFiles, trusted: list[Ed25519PublicKey]) -> str:
    """The id of the trusted key that signed ``files``; :class:`BundleRejected` otherwise."""
    raw = files.files.get(SIGNATURE_FILE)
    if raw is None:
        raise BundleRejected(files.source, "the bundle is not signed")
    try:
        envelope = json.loads(raw)
        signature = base64.b64decode(envelope["signature"], validate=True)
        claimed_digest = str(envelope["digest"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleRejected(files.source, "malformed bundle.sig") from exc
    digest = files.digest()
    if claimed_digest != digest:
        raise BundleRejected(files.source, "the bundle changed after it was signed")
    for key in trusted:
        try:
            key.verify(signature, digest.encode())
        except InvalidSignature:
            continue
        return key_id(key)
    raise BundleRejected(files.source, "no trusted key made this signature")
