"""Calling the control plane from the command line with an operator's credential."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from warden.cli.common import State
from warden.config import Settings
from warden.errors import ConfigError, UntrustedInputError, WardenError
from warden.transport.uvicorn_mtls import client_ssl_context


def control_plane_url(settings: Settings, server: str | None) -> str:
    if server:
        return server.rstrip("/")
    host = "localhost" if settings.api_host in ("127.0.0.1", "0.0.0.0") else settings.api_host  # noqa: S104
    return f"https://{host}:{settings.api_port}"


def operator_client(operator: str, server: str | None) -> httpx.Client:
    """An HTTPS client presenting ``operator``'s SVID from the state directory."""
    settings = State.settings()
    creds = settings.state_dir / "operators" / operator
    for name in ("svid.pem", "key.pem", "bundle.pem"):
        if not (creds / name).exists():
            raise ConfigError(f"no operator credential at {creds} (warden operator add)")
    context = client_ssl_context(
        ca_file=creds / "bundle.pem", certfile=creds / "svid.pem", keyfile=creds / "key.pem"
    )
    return httpx.Client(base_url=control_plane_url(settings, server), verify=context, timeout=30)


def public_client(server: str, bundle: Path) -> httpx.Client:
    """An HTTPS client with no certificate that trusts ``bundle``."""
    return httpx.Client(
        base_url=server.rstrip("/"), verify=client_ssl_context(ca_file=bundle), timeout=30
    )


def post(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST ``body`` and return the JSON answer; unreachable servers are a clear error."""
    try:
        response = client.post(path, json=body)
    except httpx.TransportError as exc:
        raise WardenError(
            f"cannot reach the control plane at {client.base_url}: {exc}",
            code="control_plane_unreachable",
        ) from exc
    return checked(response)


def checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 2xx answer; a Warden error for anything else."""
    try:
        body = response.json()
    except ValueError:
        body = {"error": "invalid_response"}
    if response.is_success:
        return dict(body)
    code = str(body.get("error", "request_failed"))
    message = f"control plane answered {response.status_code} {code}: {body.get('message', '')}"
    if 400 <= response.status_code < 500:
        raise UntrustedInputError(message, code=code)
    raise WardenError(message, code=code)
