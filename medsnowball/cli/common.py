"""Helpers shared by the CLI commands: console, logging, error exits."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "err_console",
    "fail",
    "setup_logging",
    "stderr_is_tty",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

err_console = Console(stderr=True, highlight=False)

_INSTALLED: list[logging.Handler] = []  # handlers added by setup_logging (replaced on re-run)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def stderr_is_tty() -> bool:
    """True when stderr is an interactive terminal (progress bars, colours)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``Error: message`` to stderr and exit with ``code``."""
    err_console.print(
        f"[bold red]Error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


def setup_logging(
    *, verbose: bool = False, quiet: bool = False, log_file: Path | None = None
) -> None:
    """Send medsnowball's log records to stderr (rich on a terminal, plain lines otherwise).

    Args:
        verbose: Show debug records (per-step timings).
        quiet: Only warnings and errors.
        log_file: Also append INFO+ records to this file.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("medsnowball")
    logger.setLevel(min(level, logging.INFO) if log_file is not None else level)
    while _INSTALLED:
        old = _INSTALLED.pop()
        logger.removeHandler(old)
        old.close()
    handler: logging.Handler
    if stderr_is_tty():
        from rich.logging import RichHandler

        handler = RichHandler(console=err_console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
        )
    handler.setLevel(level)
    logger.addHandler(handler)
    _INSTALLED.append(handler)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.addHandler(fh)
        _INSTALLED.append(fh)
    logger.propagate = False
