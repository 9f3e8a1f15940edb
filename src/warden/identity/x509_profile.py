"""The X.509-SVID profile shared by the issuer and the verifier.

Warden puts one private extension in each SVID: the credential epoch of its principal at issue
time, so that revoking a principal (which bumps the epoch) rejects every credential issued before,
even one issued while the revocation was being written. The OID is under ``2.25`` (a UUID turned
into an OID, ITU-T X.667), which needs no registration.
"""

from __future__ import annotations

from cryptography import x509

EPOCH_OID = x509.ObjectIdentifier("2.25.125280835833262355572937306931817928298")
MAX_EPOCH = 2**31 - 1


def encode_epoch(epoch: int) -> x509.UnrecognizedExtension:
    """The epoch as a DER INTEGER inside Warden's private extension."""
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch {epoch} out of range")
    body = epoch.to_bytes(max(1, (epoch.bit_length() + 8) // 8), "big")
    return x509.UnrecognizedExtension(EPOCH_OID, bytes([0x02, len(body)]) + body)


def decode_epoch(cert: x509.Certificate) -> int | None:
    """The epoch stored in ``cert``, or None when it has none or it is malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(EPOCH_OID)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    raw = value.value
    if len(raw) < 3 or len(raw) > 6 or raw[0] != 0x02 or raw[1] != len(raw) - 2:
        return None
    if raw[2] & 0x80:  # negative
        return None
    return int.from_bytes(raw[2:], "big")
