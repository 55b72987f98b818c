"""Errors of the report package."""

from __future__ import annotations

from medsnowball.core.errors import MedsnowballError


class InvalidFindingsError(MedsnowballError, ValueError):
    """A findings document or a result to be reported is invalid.

    Attributes:
        path: JSON path of the offending field (``"$.nodules[0].score"``), or ``"$"``.
    """

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


__all__ = ["InvalidFindingsError"]
