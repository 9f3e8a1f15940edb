"""Key managers: where the CA's private keys live.

:class:`KeyManager` is the plug-in boundary (an HSM or a cloud KMS can implement it). The default,
:class:`FileKeyManager`, keeps each key as an encrypted PKCS#8 PEM file, encrypted with a master
key held in a file readable only by Warden's user. Neither key nor passphrase ever passes through
the process environment.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from warden.identity.errors import KeyStoreError

_KEY_REF_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyManager(Protocol):
    """Creates and loads Warden's signing keys by reference: ECDSA P-256 for the CA and
    JWT-SVIDs, Ed25519 for the decision log's checkpoints."""

    def create_key(self, key_ref: str) -> ec.EllipticCurvePrivateKey:
        """Generate a new key, persist it under ``key_ref`` and return it."""

    def load_key(self, key_ref: str) -> ec.EllipticCurvePrivateKey:
        """Return the key stored under ``key_ref``."""

    def create_ed25519_key(self, key_ref: str) -> ed25519.Ed25519PrivateKey:
        """Generate a new Ed25519 key, persist it under ``key_ref`` and return it."""

    def load_ed25519_key(self, key_ref: str) -> ed25519.Ed25519PrivateKey:
        """Return the Ed25519 key stored under ``key_ref``."""


def _check_private_file(path: Path) -> None:
    """Refuse a secret file that others can read or that another user owns (like ssh does)."""
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path} is accessible by group or others (mode {info.st_mode:o})")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise KeyStoreError(f"{path} is owned by uid {info.st_uid}, not by Warden's user")


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never briefly wider) and write ``data``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class FileKeyManager:
    """Keys as encrypted PEM files in ``key_dir``, sealed with the master key in ``master_file``."""

    def __init__(self, key_dir: Path, master_file: Path) -> None:
        self._dir = key_dir
        self._master_file = master_file
        self._cache: dict[str, _PrivateKey] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(cls, key_dir: Path, master_file: Path) -> FileKeyManager:
        """Make the key directory (0700) and a new random master key (0600)."""
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(key_dir, 0o700)
        if master_file.exists():
            raise KeyStoreError(f"{master_file} already exists; refusing to overwrite a key")
        write_private_file(master_file, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        return cls(key_dir, master_file)

    def _master(self) -> bytes:
        try:
            _check_private_file(self._master_file)
            material = self._master_file.read_bytes().strip()
        except FileNotFoundError as exc:
            raise KeyStoreError(f"master key file {self._master_file} is missing") from exc
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self._master_file}: {exc}") from exc
        if len(material) < 32:
            raise KeyStoreError(f"master key in {self._master_file} is too short")
        return material

    def _path(self, key_ref: str) -> Path:
        if not key_ref or not set(key_ref) <= _KEY_REF_CHARS:
            raise KeyStoreError(f"invalid key reference {key_ref!r}")
        return self._dir / f"{key_ref}.pem"

    def create_key(self, key_ref: str) -> ec.EllipticCurvePrivateKey:
        key = ec.generate_private_key(ec.SECP256R1())
        self._store(key_ref, key)
        return key

    def load_key(self, key_ref: str) -> ec.EllipticCurvePrivateKey:
        key = self._load(key_ref)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"key {key_ref!r} is not an EC key")
        return key

    def create_ed25519_key(self, key_ref: str) -> ed25519.Ed25519PrivateKey:
        key = ed25519.Ed25519PrivateKey.generate()
        self._store(key_ref, key)
        return key

    def load_ed25519_key(self, key_ref: str) -> ed25519.Ed25519PrivateKey:
        key = self._load(key_ref)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyStoreError(f"key {key_ref!r} is not an Ed25519 key")
        return key

    def _store(self, key_ref: str, key: _PrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._master()),
        )
        try:
            write_private_file(self._path(key_ref), pem)
        except FileExistsError as exc:
            raise KeyStoreError(f"key {key_ref!r} already exists") from exc
        with self._lock:
            self._cache[key_ref] = key

    def _load(self, key_ref: str) -> _PrivateKey:
        with self._lock:
            cached = self._cache.get(key_ref)
        if cached is not None:
            return cached
        path = self._path(key_ref)
        try:
            _check_private_file(path)
            key = serialization.load_pem_private_key(path.read_bytes(), password=self._master())
        except FileNotFoundError as exc:
            raise KeyStoreError(f"key {key_ref!r} is missing from {self._dir}") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise KeyStoreError(f"cannot load key {key_ref!r}: {type(exc).__name__}") from exc
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise KeyStoreError(f"key {key_ref!r} is of a kind Warden does not use")
        with self._lock:
            self._cache[key_ref] = key
        return key
