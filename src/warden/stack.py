"""The embedded stack: everything in one process on 127.0.0.1 (``warden up``, ``warden demo``).

The control plane (API, Workload API socket, console) and a gateway share one state directory
and its SQLite store, with the default policy pack and playbooks. A first start initialises
the trust domain and an admin operator; a restart picks up the state where it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from warden.config import CONFIG_FILE_NAME, Settings, starter_config
from warden.enforce.routes import RouteTable, load_routes, parse_routes
from warden.enforce.server import GatewayServer
from warden.errors import ConfigError
from warden.identity.authority import IdentityAuthority, file_key_manager, open_authority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.identity.ca.keys import write_private_file
from warden.server.run import ControlPlaneServer
from warden.store import open_store

ADMIN = "admin"


def initialise(settings: Settings, trust_domain: str, operator: str = ADMIN) -> IdentityAuthority:
    """Create the state directory, its config, the store, the CA and a first (admin) operator
    with its credential; refuses a directory that is already initialised."""
    state_dir = settings.state_dir
    if (state_dir / CONFIG_FILE_NAME).exists() or settings.key_file.exists():
        raise ConfigError(f"{state_dir} is already initialised")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    (state_dir / CONFIG_FILE_NAME).write_text(starter_config(trust_domain))
    store = open_store(settings.database)
    keys = FileKeyManager.create(state_dir / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, trust_domain)
    authority = IdentityAuthority.from_parts(settings, store, file_key_manager(settings))
    authority.operators.add(operator, role="admin", created_by="warden init")
    write_operator_credential(authority, operator)
    return authority


def is_initialised(settings: Settings) -> bool:
    return (settings.state_dir / CONFIG_FILE_NAME).exists() and settings.key_file.exists()


def write_operator_credential(authority: IdentityAuthority, name: str) -> Path:
    """Issue an operator SVID and write svid.pem, key.pem and bundle.pem (all 0600)."""
    issued = authority.issuer.issue_operator_x509(name)
    out = authority.settings.state_dir / "operators" / name
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for filename, data in (
        ("key.pem", issued.key_pem()),
        ("svid.pem", issued.cert_chain_pem()),
        ("bundle.pem", authority.ca.bundle.to_pem()),
    ):
        path = out / filename
        path.unlink(missing_ok=True)
        write_private_file(path, data)
    return out


@dataclass
class EmbeddedStack:
    """The control plane and a gateway, serving in threads of this process."""

    authority: IdentityAuthority
    control: ControlPlaneServer
    gateway: GatewayServer
    initialised: bool

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        trust_domain: str = "example.org",
        routes: RouteTable | Path | None = None,
    ) -> EmbeddedStack:
        """Initialise the state directory when it is new, then start serving. ``routes``:
        the gateway's routes (a table, a route file; default: ``gateway_routes``, else
        none, and every request through the gateway is refused as an unknown route)."""
        initialised = not is_initialised(settings)
        if initialised:
            initialise(settings, trust_domain).store.dispose()
        authority = open_authority(settings)
        # The operator credential `warden run` and the CLI use: fresh for this run.
        write_operator_credential(authority, ADMIN)
        if isinstance(routes, Path):
            routes = load_routes(routes)
        elif routes is None:
            if settings.gateway_routes is not None:
                routes = load_routes(settings.gateway_routes)
            else:
                routes = parse_routes({"routes": []})
        control = ControlPlaneServer(authority).start_in_thread()
        try:
            gateway = GatewayServer(authority, routes=routes).start_in_thread()
        except BaseException:
            control.stop()
            raise
        return cls(authority, control, gateway, initialised)

    def login_link(self, operator: str = ADMIN) -> str:
        """A one-time link to the console for ``operator``."""
        return self.control.console_link(operator)

    def stop(self) -> None:
        """Stop the gateway, then the control plane (each writes what waits, then seals)."""
        try:
            self.gateway.stop()
        finally:
            self.control.stop()
            self.authority.store.dispose()
