"""``warden``: the root command, set-up and serving."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from warden.cli import (
    agents,
    audit,
    ca,
    console_links,
    demo,
    enforcement_points,
    mcp,
    operators,
    policy,
    response,
    run,
    sandbox,
    scim,
    svids,
    workorders,
)
from warden.cli.common import State, console, handle_errors, print_json
from warden.config import load_settings
from warden.transport.loop import run as run_loop
from warden.transport.loop import tune_for_serving
from warden.transport.serving import wait_for_stop

app = typer.Typer(
    no_args_is_help=True,
    help="Warden: zero-trust control plane for AI agents.",
    pretty_exceptions_enable=False,
)
app.add_typer(agents.app, name="agent", help="Register and manage agents.")
app.add_typer(svids.app, name="svid", help="Issue, inspect and revoke SVIDs.")
app.add_typer(operators.app, name="operator", help="Manage operators.")
app.add_typer(ca.app, name="ca", help="The built-in certificate authority.")
app.add_typer(policy.app, name="policy", help="Test, validate, evaluate and sign policies.")
app.add_typer(workorders.app, name="workorder", help="Just-in-time, task-scoped grants.")
app.add_typer(mcp.app, name="mcp", help="Pinned MCP tool definitions.")
app.add_typer(audit.app, name="audit", help="The decision log: verify, prove, read, export.")
app.add_typer(
    enforcement_points.app, name="enforcement-point", help="Services allowed to ask for decisions."
)
app.add_typer(scim.app, name="scim", help="SCIM 2.0 provisioning.")
app.add_typer(sandbox.app, name="sandbox", help="Code agents wrote, run in a jail.")
app.add_typer(console_links.app, name="console", help="The web console: login links.")
app.add_typer(response.playbook_app, name="playbook", help="Automated response playbooks.")
app.add_typer(response.incident_app, name="incident", help="Incidents playbooks opened.")
app.add_typer(response.approval_app, name="approval", help="Requests parked for a human.")
app.command("demo", help="A walk-through of Warden on a fresh state directory.")(demo.run_demo)
app.command("run")(run.run)
app.command("join")(run.join)


@app.callback()
def root(
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="State directory [default: .warden]")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL of the store")
    ] = None,
) -> None:
    State.reset()
    State.state_dir = state_dir
    State.database_url = database_url


@app.command()
@handle_errors
def init(
    trust_domain: Annotated[str, typer.Option(help="The SPIFFE trust domain")] = "example.org",
    operator: Annotated[str, typer.Option(help="Name of the first (admin) operator")] = "admin",
) -> None:
    """Create the state directory, config, store, CA and the first operator credential."""
    from warden.stack import initialise

    settings = load_settings(
        state_dir=State.state_dir, database_url=State.database_url, trust_domain=trust_domain
    )
    authority = initialise(settings, trust_domain, operator)
    authority.store.dispose()
    out = settings.state_dir / "operators" / operator
    console.print(
        f"[green]Initialised[/] trust domain [bold]{trust_domain}[/] in {settings.state_dir}"
    )
    console.print(f"Operator credential for [bold]{operator}[/] (admin): {out}")


@app.command()
@handle_errors
def up(
    trust_domain: Annotated[
        str, typer.Option(help="The trust domain, when the state directory is new")
    ] = "example.org",
    routes: Annotated[Path | None, typer.Option(help="The gateway's route file (YAML)")] = None,
) -> None:
    """Run everything in one process on 127.0.0.1: the control plane, the Workload API, a
    gateway and the console, on SQLite in the state directory. Ctrl-C stops it; a restart
    keeps its state."""
    from warden.stack import EmbeddedStack

    settings = load_settings(state_dir=State.state_dir, database_url=State.database_url)
    stack = EmbeddedStack.start(settings, trust_domain=trust_domain, routes=routes)
    try:
        control, gateway_server = stack.control, stack.gateway
        if stack.initialised:
            console.print(
                f"[green]Initialised[/] trust domain [bold]{stack.authority.trust_domain}[/] "
                f"in {settings.state_dir}"
            )
        console.print(
            f"Control plane  {control.url}  (mTLS; operators: {settings.state_dir}/operators)"
        )
        console.print(f"Workload API   unix://{settings.workload_socket_path.resolve()}")
        console.print(f"Gateway        {gateway_server.url}  as {gateway_server.spiffe_id}")
        console.print(f"Console        {control.url}/console")
        console.print(f"Sign in        {stack.login_link()}", soft_wrap=True)
        console.print("Ctrl-C stops Warden.")
        wait_for_stop()
    finally:
        stack.stop()
        console.print("Warden stopped.")


@app.command()
@handle_errors
def bundle(
    jwks: Annotated[bool, typer.Option("--jwks", help="SPIFFE bundle (JWK Set) format")] = False,
) -> None:
    """Print the trust bundle (PEM, or SPIFFE JWKS)."""
    trust_bundle = State.authority().ca.bundle
    if jwks:
        print_json(trust_bundle.to_jwks())
    else:
        typer.echo(trust_bundle.to_pem().decode(), nl=False)


@app.command()
@handle_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Run the control-plane API (mTLS) until interrupted."""
    from warden.server.run import ControlPlaneServer

    server = ControlPlaneServer(State.authority(), host=host, port=port)
    console.print(
        f"Warden control plane on [bold]{server.url}[/] "
        f"(trust domain {State.authority().trust_domain})"
    )
    if server.console is not None:
        console.print(
            f"Console on [bold]{server.url}/console[/]: sign in with a link from "
            "[bold]warden console link OPERATOR[/]"
        )
    tune_for_serving()
    run_loop(server.serve())


@app.command()
@handle_errors
def gateway(
    routes: Annotated[Path | None, typer.Option(help="Route file (YAML)")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port")] = 1,
) -> None:
    """Run the enforcement gateway (mTLS or JWT-SVID in, mTLS to upstreams) until interrupted."""
    from warden.enforce.routes import load_routes
    from warden.enforce.server import GatewayServer, run_workers

    if workers > 1:
        settings = load_settings(
            state_dir=State.state_dir,
            database_url=State.database_url,
            gateway_host=host,
            gateway_port=port,
        )
        console.print(
            f"Warden gateway on https://{settings.gateway_host}:"
            f"{settings.gateway_port} with {workers} workers"
        )
        run_workers(settings, routes or settings.gateway_routes, workers)
        return

    server = GatewayServer(
        State.authority(),
        routes=load_routes(routes) if routes is not None else None,
        host=host,
        port=port,
    )
    console.print(f"Warden gateway on [bold]{server.url}[/] as {server.spiffe_id}")
    tune_for_serving()
    run_loop(server.serve())


@app.command()
def version() -> None:
    """Print Warden's version."""
    from warden import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
