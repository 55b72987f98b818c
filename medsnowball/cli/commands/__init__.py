"""Sub-command registry of the ``medsnowball`` CLI.

Each module listed in :data:`COMMAND_MODULES` defines ``register(app: typer.Typer)``, which
adds its command(s) -- a plain ``@app.command()`` or a sub-app via ``app.add_typer(...)``
(e.g. ``medsnowball train classifier|segmenter|detector``). To add a command, create
``medsnowball/cli/commands/<name>.py`` with ``register`` and append its name here.
Command modules import only typer and the standard library at module level; everything
heavy goes inside the command function, so ``medsnowball --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["COMMAND_MODULES", "register_all"]

#: Modules under ``medsnowball.cli.commands`` whose ``register(app)`` is called, in the
#: order the commands appear in ``--help``.
COMMAND_MODULES: tuple[str, ...] = ("run", "info", "demo", "convert", "train", "eval", "export")


def register_all(app: typer.Typer) -> None:
    """Call ``register(app)`` of every module in :data:`COMMAND_MODULES`."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(app)
