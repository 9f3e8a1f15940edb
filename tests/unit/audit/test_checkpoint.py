"""Checkpoints as C2SP signed notes: they verify with the log's key and nothing else."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st

from warden.audit import checkpoint as checkpoints
from warden.audit.checkpoint import CheckpointInvalid, VerifierKey
from warden.identity.ca.log_keys import LogKeys

ROOT = bytes(range(32))


def keys(name: str = "example.org/warden-log") -> LogKeys:
    return LogKeys(name, ed25519.Ed25519PrivateKey.generate())


def test_a_checkpoint_is_a_signed_note() -> None:
    log = keys()
    signed = checkpoints.sign(log, 42, ROOT)
    text, signature = signed.note.split("\n\n")
    assert text == f"example.org/warden-log\n42\n{base64.b64encode(ROOT).decode()}"
    assert signature.startswith("\u2014 example.org/warden-log ")
    opened = checkpoints.verify(signed.note, VerifierKey.parse(log.verifier_key))
    assert (opened.origin, opened.size, opened.root) == ("example.org/warden-log", 42, ROOT)


def test_forged_and_altered_checkpoints_are_refused() -> None:
    log, other = keys(), keys()
    key = VerifierKey.parse(log.verifier_key)
    forged = checkpoints.sign(other, 42, ROOT)  # another key, the same name
    with pytest.raises(CheckpointInvalid, match="not signed by this log"):
        checkpoints.verify(forged.note, key)
    signed = checkpoints.sign(log, 42, ROOT)
    with pytest.raises(CheckpointInvalid):
        checkpoints.verify(signed.note.replace("\n42\n", "\n43\n"), key)
    # A genuine signature line with a flipped signature byte.
    text, line = signed.note.split("\n\n")
    name, encoded = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 1
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        checkpoints.verify(f"{text}\n\n{name} {base64.b64encode(bytes(raw)).decode()}\n", key)


def test_other_signers_lines_are_ignored() -> None:
    log, witness = keys(), keys("witness.example/w1")
    signed = checkpoints.sign(log, 7, ROOT)
    text = checkpoints.body(log.name, 7, ROOT)
    cosigned = signed.note + witness.sign_note(text)
    assert checkpoints.verify(cosigned, VerifierKey.parse(log.verifier_key)).size == 7
    with pytest.raises(CheckpointInvalid):
        checkpoints.verify(
            cosigned,
            VerifierKey.parse(witness.verifier_key).__class__(
                log.name, b"\x00\x00\x00\x00", VerifierKey.parse(log.verifier_key).public_key
            ),
        )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "no key",
        "name+zz+AQ==",
        "name+00000000+" + base64.b64encode(b"\x01" + b"k" * 32).decode(),  # wrong key id
        "name+00000000+" + base64.b64encode(b"\x02" + b"k" * 32).decode(),  # not Ed25519
    ],
)
def test_bad_verifier_keys(bad: str) -> None:
    with pytest.raises(CheckpointInvalid):
        VerifierKey.parse(bad)


@given(st.text(max_size=300))
def test_garbage_notes_give_our_error(note: str) -> None:
    key = VerifierKey.parse(keys().verifier_key)
    with pytest.raises(CheckpointInvalid):
        checkpoints.verify(note, key)
