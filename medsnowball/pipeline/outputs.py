"""Batch bookkeeping files: per-case status and candidates, batch summary and LUNA16 CSV.

Layout of an output folder ``OUT``::

    OUT/summary.csv                 one row per case (SUMMARY_COLUMNS), sorted by case_id
    OUT/luna16_candidates.csv       every candidate of every finished case (ok or
                                    needs_review; LUNA16_COLUMNS)
    OUT/<case_id>/candidates.csv    the case's candidates, same columns (written first)
    OUT/<case_id>/findings.json     written last by the report writers: "case done"
    OUT/<case_id>/status.json       status, error, flag codes, seconds (after the case ends)
    OUT/<case_id>/error.txt         traceback of a failed case

The batch files are assembled from the per-case files only, so a resumed run, a run with
more workers or another executor all produce the same summary and LUNA16 CSV.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.csvsafe import FORMULA_PREFIXES, csv_safe
from medsnowball.core.findings import Candidate
from medsnowball.core.quality import STATUS_FAILED, STATUS_NEEDS_REVIEW, STATUS_OK

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.io import CaseInput

__all__ = [
    "CANDIDATES_CSV",
    "ERROR_TXT",
    "FINDINGS_JSON",
    "FINISHED_STATUSES",
    "FORMULA_PREFIXES",
    "LUNA16_COLUMNS",
    "LUNA16_CSV",
    "LUNA16_REWRITE_INTERVAL_S",
    "STATUS_JSON",
    "SUMMARY_COLUMNS",
    "SUMMARY_CSV",
    "BatchFiles",
    "CaseOutcome",
    "clear_case_markers",
    "csv_safe",
    "flag_codes",
    "read_candidate_rows",
    "read_findings",
    "read_outcome",
    "remove_stale_temporaries",
    "write_candidates_csv",
    "write_error",
    "write_luna16_csv",
    "write_status",
    "write_summary_csv",
]

log = logging.getLogger(__name__)

SUMMARY_CSV = "summary.csv"
LUNA16_CSV = "luna16_candidates.csv"
CANDIDATES_CSV = "candidates.csv"
FINDINGS_JSON = "findings.json"
STATUS_JSON = "status.json"
ERROR_TXT = "error.txt"

SUMMARY_COLUMNS: tuple[str, ...] = (
    "case_id",
    "source",
    "series_uid",
    "status",
    "error",
    "n_nodules",
    "lung_rads",
    "seconds",
    "warnings",
)
LUNA16_COLUMNS: tuple[str, ...] = ("seriesuid", "coordX", "coordY", "coordZ", "probability")
#: Statuses of a case that ran to the end (``--resume`` does not run it again).
FINISHED_STATUSES: tuple[str, ...] = (STATUS_OK, STATUS_NEEDS_REVIEW)
#: Rewrite luna16_candidates.csv during a batch at most this often (seconds); it is
#: always written at the end.
LUNA16_REWRITE_INTERVAL_S = 60.0


def flag_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Flag codes without repeats, first occurrence first (two flags may share a code)."""
    return tuple(dict.fromkeys(codes))


@dataclass(frozen=True)
class CaseOutcome:
    """One row of summary.csv: what happened to a case (small; returned by workers).

    Attributes:
        case_id: Case id (output sub-folder name).
        source: Input path.
        series_uid: SeriesInstanceUID or file stem.
        status: ``"ok"``, ``"needs_review"`` (finished with a quality flag of severity
            ``"review"``) or ``"failed"``.
        error: ``"ExceptionType: message"`` of a failed case, else ``""``.
        n_nodules: Nodules at or above the threshold (``None`` when failed).
        lung_rads: Exam Lung-RADS category (``""`` when failed or not assessed).
        seconds: Wall time of the case.
        flags: Codes of the case's quality flags, in pipeline order (summary.csv's
            ``warnings`` column, joined by ``;``).
        reused: True when ``--resume`` found the case already done (not rerun).
    """

    case_id: str
    source: str
    series_uid: str
    status: str
    error: str = ""
    n_nodules: int | None = None
    lung_rads: str = ""
    seconds: float = 0.0
    flags: tuple[str, ...] = ()
    reused: bool = False

    @property
    def ok(self) -> bool:
        """True when the case finished (status ``"ok"`` or ``"needs_review"``)."""
        return self.status in FINISHED_STATUSES

    @property
    def needs_review(self) -> bool:
        """True when the case finished but a quality flag asks for review."""
        return self.status == STATUS_NEEDS_REVIEW

    def row(self) -> list[str]:
        """Values in :data:`SUMMARY_COLUMNS` order, formatted for CSV (cells from the
        inputs through :func:`~medsnowball.core.csvsafe.csv_safe`)."""
        return [
            csv_safe(self.case_id),
            csv_safe(self.source),
            csv_safe(self.series_uid),
            self.status,
            csv_safe(self.error),
            "" if self.n_nodules is None else str(self.n_nodules),
            self.lung_rads,
            f"{self.seconds:.2f}",
            csv_safe(";".join(self.flags)),
        ]


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _fmt(v: float, digits: int) -> str:
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v} in a candidate")
    text = f"{v:.{digits}f}"
    return "0." + "0" * digits if text == "-0." + "0" * digits else text


def candidate_row(luna_uid: str, cand: Candidate) -> list[str]:
    """LUNA16 row of one candidate: world LPS mm to 3 decimals, probability to 6.

    The series UID comes from the input: it goes through
    :func:`~medsnowball.core.csvsafe.csv_safe`; the numbers (negative ones included) are
    written as numbers.
    """
    x, y, z = cand.center_lps
    return [csv_safe(luna_uid), _fmt(x, 3), _fmt(y, 3), _fmt(z, 3), _fmt(float(cand.score), 6)]


def write_candidates_csv(path: Path, luna_uid: str, candidates: Sequence[Candidate]) -> Path:
    """Write one case's candidates in LUNA16 submission format, atomically.

    Args:
        path: Destination file.
        luna_uid: Value of the ``seriesuid`` column.
        candidates: Every scored candidate, in the order to write.

    Returns:
        ``path``.
    """
    rows = [candidate_row(luna_uid, c) for c in candidates]
    return atomic_write_text(path, _csv_text(LUNA16_COLUMNS, rows))


def read_candidate_rows(path: Path) -> list[list[str]]:
    """Rows (without header) of a per-case candidates.csv; ``[]`` when absent or unreadable."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError:
        return []
    if not rows or tuple(rows[0]) != LUNA16_COLUMNS:
        log.warning("%s: unexpected header, ignored", path)
        return []
    return [r for r in rows[1:] if len(r) == len(LUNA16_COLUMNS)]


def read_findings(case_dir: Path, case_id: str) -> dict[str, Any] | None:
    """Return the case's findings.json if it exists, parses and names this case, else None.

    This is the "case done" test of ``--resume`` (findings.json is written last).
    """
    path = case_dir / FINDINGS_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("case_id") != case_id:
        return None
    return data


def clear_case_markers(case_dir: Path) -> None:
    """Before (re)running a case: remove its done/status markers and stale temporary files.

    Other outputs are left alone (they are overwritten atomically); without findings.json
    the case counts as unfinished until the new run completes.
    """
    if not case_dir.is_dir():
        return
    for name in (FINDINGS_JSON, STATUS_JSON, ERROR_TXT):
        (case_dir / name).unlink(missing_ok=True)
    remove_stale_temporaries(case_dir)


def remove_stale_temporaries(case_dir: Path) -> None:
    """Delete ``.tmp-*`` files a killed run left behind in a case folder.

    Called before a case is rerun and when ``--resume`` reuses a finished case (a run
    killed between writing findings.json and status.json leaves a temporary status file).
    """
    for tmp in case_dir.glob(".tmp-*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def write_status(case_dir: Path, outcome: CaseOutcome) -> Path:
    """Write ``status.json`` of a case atomically."""
    data = asdict(outcome)
    data.pop("reused", None)
    return atomic_write_text(case_dir / STATUS_JSON, json.dumps(data, indent=2) + "\n")


def write_error(case_dir: Path, text: str) -> Path:
    """Write ``error.txt`` (the traceback of a failed case) atomically."""
    return atomic_write_text(case_dir / ERROR_TXT, text)


def _read_status(case_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((case_dir / STATUS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_outcome(case_dir: Path, case_id: str, source: str, series_uid: str) -> CaseOutcome | None:
    """Rebuild a case's summary row from its folder.

    Args:
        case_dir: ``OUT/<case_id>``.
        case_id: The case id.
        source: Input path (used when the files do not say).
        series_uid: Series UID (used when the files do not say).

    Returns:
        An ok or needs_review row when findings.json is valid (status and flag codes from
        its ``quality`` block: a file written before that block existed reads as ok without
        flags; seconds from status.json, or from findings.json when the run stopped between
        the two), a failed row when status.json says so, or ``None`` when the case has not
        finished.
    """
    findings = read_findings(case_dir, case_id)
    status = _read_status(case_dir)
    if findings is not None:
        assessment = findings.get("assessment") or {}
        seconds = sum(float(v) for v in (findings.get("timings_s") or {}).values())
        if status is not None and status.get("status") in FINISHED_STATUSES:
            seconds = float(status.get("seconds", seconds))
        case_status, flags = _finished_status(findings)
        return CaseOutcome(
            case_id=case_id,
            source=source,
            series_uid=str(findings.get("series_uid") or series_uid or ""),
            status=case_status,
            n_nodules=len(findings.get("nodules") or []),
            lung_rads=str(assessment.get("lung_rads") or ""),
            seconds=seconds,
            flags=flags,
        )
    if status is not None and status.get("status") == STATUS_FAILED:
        return CaseOutcome(
            case_id=case_id,
            source=source,
            series_uid=str(status.get("series_uid") or series_uid or ""),
            status=STATUS_FAILED,
            error=str(status.get("error") or "failed (no message recorded)"),
            seconds=float(status.get("seconds") or 0.0),
        )
    return None


def _finished_status(findings: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Status and flag codes of a finished case's findings.json (old files: ok, none)."""
    quality = findings.get("quality")
    if not isinstance(quality, dict):
        return STATUS_OK, ()
    flags = quality.get("flags")
    items = flags if isinstance(flags, list) else []
    codes = flag_codes(str(f["code"]) for f in items if isinstance(f, dict) and "code" in f)
    status = quality.get("status", findings.get("status"))
    return (status if status in FINISHED_STATUSES else STATUS_OK), codes


def write_summary_csv(path: Path, outcomes: Iterable[CaseOutcome]) -> Path:
    """Write summary.csv (rows sorted by case_id) atomically."""
    rows = [o.row() for o in sorted(outcomes, key=lambda o: o.case_id)]
    return atomic_write_text(path, _csv_text(SUMMARY_COLUMNS, rows))


def write_luna16_csv(path: Path, rows_by_case: dict[str, list[list[str]]]) -> Path:
    """Write luna16_candidates.csv (cases sorted by id, each case's rows in order) atomically.

    The ``seriesuid`` cell of every row goes through
    :func:`~medsnowball.core.csvsafe.csv_safe` again (a per-case file written by an older
    version or a custom step may hold a raw one); the numeric cells are copied unchanged.
    """
    rows = [
        [csv_safe(r[0]), *r[1:]] if r else r
        for case_id in sorted(rows_by_case)
        for r in rows_by_case[case_id]
    ]
    return atomic_write_text(path, _csv_text(LUNA16_COLUMNS, rows))


class BatchFiles:
    """Keeps summary.csv / luna16_candidates.csv up to date while a batch runs.

    Args:
        out_dir: The batch output folder.
        cases: The batch's cases (``case_id``, ``source``, ``series_uid``).
    """

    def __init__(self, out_dir: Path, cases: Sequence[CaseInput]) -> None:
        self.out_dir = out_dir
        self.cases = {c.case_id: c for c in cases}
        self.outcomes: dict[str, CaseOutcome] = {}
        self.candidates: dict[str, list[list[str]]] = {}
        self._luna_written = 0.0

    def record(self, outcome: CaseOutcome) -> None:
        self.outcomes[outcome.case_id] = outcome
        if outcome.ok:
            self.candidates[outcome.case_id] = read_candidate_rows(
                self.out_dir / outcome.case_id / "candidates.csv"
            )
        else:
            self.candidates.pop(outcome.case_id, None)
        write_summary_csv(self.out_dir / SUMMARY_CSV, self.outcomes.values())
        now = time.monotonic()
        if now - self._luna_written >= LUNA16_REWRITE_INTERVAL_S:
            write_luna16_csv(self.out_dir / LUNA16_CSV, self.candidates)
            self._luna_written = now

    def finalize(self) -> list[CaseOutcome]:
        """Assemble both CSVs from the per-case files only (identical for any executor)."""
        final: list[CaseOutcome] = []
        rows: dict[str, list[list[str]]] = {}
        for case_id, case in sorted(self.cases.items()):
            on_disk = read_outcome(
                self.out_dir / case_id, case_id, str(case.source), str(case.series_uid or "")
            )
            if on_disk is None:
                continue  # not run (interrupted batch)
            reused = self.outcomes.get(case_id)
            if reused is not None and reused.reused:
                on_disk = replace(on_disk, reused=True)
            final.append(on_disk)
            if on_disk.ok:
                rows[case_id] = read_candidate_rows(self.out_dir / case_id / "candidates.csv")
        write_summary_csv(self.out_dir / SUMMARY_CSV, final)
        write_luna16_csv(self.out_dir / LUNA16_CSV, rows)
        return final
