"""``warden console link OPERATOR``: a one-time login link to the console."""

from __future__ import annotations

from typing import Annotated

import typer

from warden.cli.common import State, handle_errors

app = typer.Typer(no_args_is_help=True)


@app.command("link")
@handle_errors
def link(
    operator: Annotated[str, typer.Argument(help="The operator who signs in with it")],
    url: Annotated[
        str | None, typer.Option(help="The console's address (default: api_host and api_port)")
    ] = None,
) -> None:
    """Print a one-time link that signs ``operator`` in to the console. It works once, for
    console_login_link_ttl_s (10 minutes by default); only its digest is stored."""
    from warden.console.access import Console

    authority = State.authority()
    settings = authority.settings
    base = url or settings.console_public_url or f"https://{settings.api_host}:{settings.api_port}"
    token = Console.link_for(authority, operator, by="cli")
    typer.echo(f"{base.rstrip('/')}/console/login?token={token}")
