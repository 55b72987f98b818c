"""Neutralise CSV cells a spreadsheet would run as a formula (OWASP "CSV injection").

Every CSV medsnowball writes (``summary.csv``, ``skipped.csv``, ``luna16_candidates.csv``,
per-case ``candidates.csv`` and ``nodules.csv``) passes the cells that come from the
inputs (series UIDs, case ids, file paths, descriptions, error messages that quote them)
through :func:`csv_safe`. Numbers medsnowball formats itself (coordinates such as
``-12.5``, scores) are written as they are: they must stay numbers.

Lives in :mod:`medsnowball.core` so that the pipeline and the report writers share one
rule without importing each other.
"""

from __future__ import annotations

__all__ = ["FORMULA_PREFIXES", "csv_safe"]

#: Leading characters a spreadsheet reads as a formula (OWASP "CSV injection"): ``=``,
#: ``+``, ``-``, ``@``, tab and carriage return.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """``text`` with a ``'`` prepended when a spreadsheet would read it as a formula.

    Idempotent: a neutralised cell starts with ``'`` and is left alone the second time.

    Args:
        text: A cell value that comes from an input (header value, file name, message).

    Returns:
        ``"'" + text`` when ``text`` starts with one of :data:`FORMULA_PREFIXES`, else
        ``text`` unchanged.
    """
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
