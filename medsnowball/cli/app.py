"""The typer application behind the ``medsnowball`` console script."""

from __future__ import annotations

import typer

from medsnowball import __version__
from medsnowball.cli.commands import register_all

__all__ = ["app", "main"]

app = typer.Typer(
    name="medsnowball",
    help=(
        "Find, segment, measure and report lung nodules in chest CT.\n\n"
        "Research software, not for clinical use."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"medsnowball {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
) -> None:
    """Find, segment, measure and report lung nodules in chest CT (research use only)."""


register_all(app)


def main() -> None:
    """Entry point of the ``medsnowball`` console script (exit codes: 0 ok, 1 some cases
    failed, 2 usage error)."""
    app(prog_name="medsnowball")
