"""Checkpoints: the log's tree head (origin, size, root) as a C2SP tlog-checkpoint in a signed
note, and their verification against the log's verifier key. Anyone can check one with the
public key alone; see ``docs/audit.md`` for doing it without Warden."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from warden.errors import AuditError
from warden.identity.ca.log_keys import ED25519, LogKeys, key_id

MAX_NOTE_BYTES = 16_384
MAX_SIGNATURES = 16


class CheckpointInvalid(AuditError):
    """A checkpoint that is malformed or not signed by the log's key."""

    code = "checkpoint_invalid"


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: ed25519.Ed25519PublicKey

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """``name+keyid+base64(0x01 || key)`` (the signed-note verifier key form)."""
        try:
            name, hex_id, encoded = text.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            given_id = bytes.fromhex(hex_id)
        except (ValueError, binascii.Error) as exc:
            raise CheckpointInvalid(f"not a verifier key: {exc}") from exc
        if len(raw) != 33 or raw[:1] != ED25519:
            raise CheckpointInvalid("not an Ed25519 verifier key")
        if key_id(name, raw[1:]) != given_id:
            raise CheckpointInvalid("the verifier key's id does not match its key")
        return cls(name, given_id, ed25519.Ed25519PublicKey.from_public_bytes(raw[1:]))


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str  # the whole signed note

    def to_dict(self) -> dict[str, object]:
        return {"origin": self.origin, "size": self.size, "root": self.root.hex()}


def body(origin: str, size: int, root: bytes) -> bytes:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()


def sign(keys: LogKeys, size: int, root: bytes) -> Checkpoint:
    """A checkpoint of the tree of ``size`` entries with ``root``, signed by the log."""
    text = body(keys.name, size, root)
    note = text.decode() + "\n" + keys.sign_note(text)
    return Checkpoint(keys.name, size, root, note)


def verify(note: str, key: VerifierKey) -> Checkpoint:
    """The checkpoint in ``note``, once its signature by ``key`` verifies."""
    if len(note.encode()) > MAX_NOTE_BYTES or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise CheckpointInvalid("not a signed note")
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not text:
        raise CheckpointInvalid("a signed note has text, a blank line and signatures")
    text += "\n"
    verified = False
    lines = signatures.split("\n")
    if lines[-1] != "" or len(lines) - 1 > MAX_SIGNATURES:
        raise CheckpointInvalid("malformed signature lines")
    for line in lines[:-1]:
        if not line.startswith("\u2014 "):
            raise CheckpointInvalid("malformed signature line")
        name, _, encoded = line[2:].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CheckpointInvalid("malformed signature") from exc
        if name != key.name or raw[:4] != key.key_id:
            continue  # another signer's (a witness's): ignored, as the spec says
        try:
            key.public_key.verify(raw[4:], text.encode())
        except InvalidSignature as exc:
            raise CheckpointInvalid("the checkpoint's signature does not verify") from exc
        verified = True
    if not verified:
        raise CheckpointInvalid("the checkpoint is not signed by this log's key")
    return _parse(text, note)


def _parse(text: str, note: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or not all(lines[:3]):
        raise CheckpointInvalid("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointInvalid("the tree size is a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointInvalid("the root hash is not base64") from exc
    if len(root) != 32:
        raise CheckpointInvalid("the root hash is not SHA-256")
    return Checkpoint(origin, int(size_text), root, note)
