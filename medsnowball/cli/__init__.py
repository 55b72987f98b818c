"""Command-line interface: ``medsnowball run | info | demo | convert``.

Importing this package must stay cheap (``medsnowball --help`` starts in well under a
second): only typer, rich and the standard library are imported here; the commands import
the pipeline, I/O and algorithms inside their functions.
"""

from __future__ import annotations

from medsnowball.cli.app import app, main

__all__ = ["app", "main"]
