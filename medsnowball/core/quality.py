"""Quality flags: machine-readable findings about how trustworthy a case's result is.

Every stage that notices something a reader must know (the image was reoriented, the lungs
touch the edge of the field of view, the left/right split had to be repaired, the nodule cap
was reached, ...) records a :class:`QualityFlag`. The pipeline gathers them into
``CaseResult.quality``; a flag of severity ``"review"`` turns the case status from ``"ok"``
into ``"needs_review"``, one of severity ``"info"`` is reported but leaves the status alone.

Codes are stable snake_case identifiers (documented in ``docs/findings.md``); messages are
one human sentence that says what was found and what it means for the result. Neither may
contain patient identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Severity that leaves the case status ``"ok"``.
SEVERITY_INFO = "info"
#: Severity that makes the case status ``"needs_review"``.
SEVERITY_REVIEW = "review"
SEVERITIES = (SEVERITY_INFO, SEVERITY_REVIEW)

#: Case statuses, from best to worst.
STATUS_OK = "ok"
STATUS_NEEDS_REVIEW = "needs_review"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_NEEDS_REVIEW, STATUS_FAILED)


@dataclass(frozen=True)
class QualityFlag:
    """One quality finding about a case.

    Attributes:
        code: Stable machine-readable identifier, e.g. ``"lungs_touch_fov_edge"``.
        message: One human sentence: what was found and what it means for the result.
        severity: ``"info"`` (reported only) or ``"review"`` (the case needs review).
    """

    code: str
    message: str
    severity: str = SEVERITY_REVIEW

    def __post_init__(self) -> None:
        if not self.code or not self.code.replace("_", "").isalnum() or not self.code.islower():
            raise ValueError(f"QualityFlag code must be lower snake_case, got {self.code!r}.")
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"QualityFlag severity must be one of {SEVERITIES}, got {self.severity!r}."
            )

    def to_dict(self) -> dict[str, str]:
        """JSON form ``{"code", "severity", "message"}``."""
        return {"code": self.code, "severity": self.severity, "message": self.message}


def merge_flags(*groups: Iterable[QualityFlag]) -> tuple[QualityFlag, ...]:
    """Concatenate flag groups, keeping the first flag of each ``(code, message)`` pair.

    Args:
        *groups: Flags from the stages, in pipeline order.

    Returns:
        The flags without exact repeats, order kept.
    """
    seen: set[tuple[str, str]] = set()
    out: list[QualityFlag] = []
    for group in groups:
        for flag in group:
            key = (flag.code, flag.message)
            if key not in seen:
                seen.add(key)
                out.append(flag)
    return tuple(out)


def status_for(flags: Iterable[QualityFlag]) -> str:
    """Case status implied by the flags of a case that ran to the end.

    Args:
        flags: The case's quality flags.

    Returns:
        ``"needs_review"`` when any flag has severity ``"review"``, else ``"ok"``.
    """
    return (
        STATUS_NEEDS_REVIEW
        if any(f.severity == SEVERITY_REVIEW for f in flags)
        else STATUS_OK
    )


__all__ = [
    "SEVERITIES",
    "SEVERITY_INFO",
    "SEVERITY_REVIEW",
    "STATUSES",
    "STATUS_FAILED",
    "STATUS_NEEDS_REVIEW",
    "STATUS_OK",
    "QualityFlag",
    "merge_flags",
    "status_for",
]
