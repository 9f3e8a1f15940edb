"""The certificate authority: the only place in Warden that touches private keys.

Everything above this line handles certificates, public keys and tokens; everything that signs
lives here: the root and intermediate CA, the JWT-SVID signing keys, the decision log's keys,
and the key manager that keeps them encrypted at rest.
"""

from warden.identity.ca.authority import CertificateAuthority, IssuedX509
from warden.identity.ca.keys import FileKeyManager, KeyManager
from warden.identity.ca.log_keys import LogKeys

__all__ = ["CertificateAuthority", "FileKeyManager", "IssuedX509", "KeyManager", "LogKeys"]
