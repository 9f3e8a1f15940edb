"""``warden run``: start a workload bound to one agent, and ``warden join`` for containers.

``warden run --agent NAME -- CMD ...`` starts CMD held before ``exec``, has the control plane
bind that process (boot, pid, start time) to the agent with the operator's credential, then lets
it run with ``SPIFFE_ENDPOINT_SOCKET`` set. The workload asks the Workload API for its identity
like any SPIFFE workload; no secret is copied into it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from warden.cli.common import State, console, err_console, handle_errors
from warden.cli.remote import operator_client, post, public_client
from warden.identity.attestation.container import sbom_digest
from warden.identity.attestation.unix import ProcessRef
from warden.identity.ca.keys import write_private_file


@handle_errors
def run(
    command: Annotated[list[str], typer.Argument(help="The workload's command line")],
    agent: Annotated[str, typer.Option(help="The agent the workload is")],
    operator: Annotated[str, typer.Option(help="Operator credential to bind with")] = "admin",
    server: Annotated[str | None, typer.Option(help="Control plane URL")] = None,
    socket: Annotated[Path | None, typer.Option(help="Workload API socket")] = None,
) -> None:
    """Run COMMAND as agent AGENT (it gets its identity from the Workload API)."""
    settings = State.settings()
    endpoint = f"unix://{(socket or settings.workload_socket_path).resolve()}"
    read_end, write_end = os.pipe()
    env = {**os.environ, "SPIFFE_ENDPOINT_SOCKET": endpoint}
    shim = [sys.executable, "-m", "warden.identity.attestation.hold", str(read_end)]
    child = subprocess.Popen([*shim, *command], env=env, pass_fds=(read_end,))
    os.close(read_end)
    binding = None
    with operator_client(operator, server) as client:
        try:
            process = ProcessRef.of(child.pid)
            launch = {
                "agent": agent,
                "boot_id": process.boot_id,
                "pid": process.pid,
                "start_time": process.start_time,
            }
            binding = post(client, "/v1/launches", launch)["id"]
        except BaseException:
            child.kill()
            os.close(write_end)
            child.wait()
            raise
        os.write(write_end, b"g")
        os.close(write_end)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda s, _f: child.send_signal(s))
        code = child.wait()
        try:
            post(client, f"/v1/launches/{binding}/end")
        except Exception as exc:  # the binding dies with the process anyway (start time)
            err_console.print(f"warning: could not end launch binding: {exc}")
    raise typer.Exit(code)


@handle_errors
def join(
    token: Annotated[str, typer.Option(help="One-time join token")],
    image_digest: Annotated[str, typer.Option(help="This container's image digest")],
    sbom: Annotated[Path, typer.Option(help="This container's CycloneDX SBOM")],
    bundle: Annotated[Path, typer.Option(help="Trust bundle (PEM) to trust the server")],
    out: Annotated[Path, typer.Option(help="Directory for svid.pem, key.pem, bundle.pem")],
    server: Annotated[str, typer.Option(help="Control plane URL")],
) -> None:
    """Container launcher side: present evidence with a join token, receive an X.509-SVID."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "container")]))
        .sign(key, hashes.SHA256())
    )
    with public_client(server, bundle) as client:
        evidence = {
            "token": token,
            "image_digest": image_digest,
            "sbom_digest": sbom_digest(sbom.read_bytes()),
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        }
        answer = post(client, "/v1/attest/container", evidence)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in (
        (
            "key.pem",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
        ("svid.pem", answer["cert_chain_pem"].encode()),
        ("bundle.pem", answer["bundle_pem"].encode()),
    ):
        (out / name).unlink(missing_ok=True)
        write_private_file(out / name, data)
    console.print(f"[green]Joined[/] as {answer['spiffe_id']} -> {out}")
