"""The decision log's keys: an Ed25519 key that signs checkpoints as C2SP signed notes, and
an HMAC key derived from it that seals every entry.

Verifying a checkpoint needs only the public key, in the signed-note verifier key form
(``name+keyid+base64(0x01 || key)``), which Warden publishes and auditors keep. The entry MAC
is for the log host's own verifier: it locates an entry edited with its hash recomputed by
someone who could write the database but not read Warden's keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from warden.keyed_hash import HmacSha256

ED25519 = b"\x01"  # the signed-note signature type of Ed25519


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note)."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


class LogKeys:
    """Sign checkpoint notes and seal entries for the log named ``name``."""

    def __init__(self, name: str, key: ed25519.Ed25519PrivateKey) -> None:
        if not name or any(c.isspace() or c == "+" for c in name):
            raise ValueError("a note key name has no spaces and no '+'")
        self.name = name
        self._key = key
        self.public_key = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        self._mac_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"warden audit entry mac v1"
        ).derive(raw)
        self._keyed = HmacSha256(self._mac_key)

    def sign_note(self, text: bytes) -> str:
        """The signature line for note ``text`` (which ends in a newline)."""
        signature = self._key.sign(text)
        return f"\u2014 {self.name} {base64.b64encode(self.key_id + signature).decode()}\n"

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` under the entry MAC key (from the key's padded states,
        made once: each entry's MAC skips the key set-up)."""
        return self._keyed.digest(data)

    @property
    def entry_mac_key(self) -> bytes:
        """The MAC key itself, for the log host's own verifier (``warden audit verify``),
        whose worker processes check entries in bulk."""
        return self._mac_key

    def fingerprint(self, value: bytes) -> str:
        """A keyed fingerprint: equal values match, nobody without the key learns the value."""
        return hmac.digest(self._mac_key, b"fingerprint\x00" + value, "sha256").hex()[:24]

    @property
    def verifier_key(self) -> str:
        """The signed-note verifier key: ``name+<key id hex>+<base64(0x01 || public key)>``."""
        encoded = base64.b64encode(ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"
