"""What every ``warden`` subcommand shares: settings, the opened authority, error output."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from warden.config import Settings, load_settings
from warden.errors import UntrustedInputError, WardenError
from warden.identity.authority import IdentityAuthority, open_authority

console = Console()
err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


class State:
    """Per-invocation state set by the root callback."""

    state_dir: Path | None = None
    database_url: str | None = None
    _settings: Settings | None = None
    _authority: IdentityAuthority | None = None

    @classmethod
    def settings(cls) -> Settings:
        if cls._settings is None:
            cls._settings = load_settings(state_dir=cls.state_dir, database_url=cls.database_url)
        return cls._settings

    @classmethod
    def authority(cls) -> IdentityAuthority:
        if cls._authority is None:
            cls._authority = open_authority(cls.settings())
        return cls._authority

    @classmethod
    def reset(cls) -> None:
        if cls._authority is not None:
            cls._authority.store.dispose()
        cls._settings = None
        cls._authority = None


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print Warden errors as ``error[code]: message`` and exit 2 (bad input) or 1 (fault)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except WardenError as exc:
            err_console.print(
                f"[bold red]error{escape('[' + exc.code + ']')}[/]: {escape(exc.message)}",
                highlight=False,
            )
            raise typer.Exit(2 if isinstance(exc, UntrustedInputError) else 1) from exc

    return wrapper


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))
