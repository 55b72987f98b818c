"""Inputs a batch did not analyse: ``OUT/skipped.csv`` and the "not analysed" rule.

Every series and file that discovery found but did not turn into a case gets a row in
``OUT/skipped.csv`` (columns :data:`SKIPPED_COLUMNS`), written next to ``summary.csv`` when
the batch starts. Each row says whether the input counts as **not analysed**: an input
that looks like CT data the user wanted analysed, but could not be (corrupt, unreadable,
incomplete). Any such row makes the batch exit with :data:`EXIT_NOT_ANALYSED` (4) unless a
case failed (1 wins). The other rows are informational and leave the exit code alone.

=======================  =============  =================================================
code                     not analysed   meaning
=======================  =============  =================================================
``inconsistent``         yes            a DICOM series with mixed sizes/orientations or
                                        slices without position
``too_few_slices``       yes            a DICOM series too short for a CT volume
``unreadable``           yes            an image file (NIfTI, ...) that cannot be read
``corrupt_file``         yes            a DICOM file whose header cannot be parsed, an
                                        empty file, a ``.dcm`` file that is not DICOM
``cannot_read``          yes            a file the operating system refused to read
``not_axial``            yes / no       non-axial CT slices: not analysed only when no
                                        series of the same study became a case (else a
                                        reformat of an analysed study)
``not_preferred``        no             a better series of the same study was analysed
``localizer``,           no             not a CT volume (scout, screenshot, colour image,
``secondary_capture``,                  another modality, no Modality and no CT values,
``not_image``,                          a label map such as our own masks)
``modality``,
``no_modality_not_ct``,
``label_map``
``index_file``           no             DICOMDIR and similar index files
``data_file``            no             the data half of a header-plus-data image
``no_pixel_data``        no             DICOM objects without pixels (SR, presentation
                                        states, ...)
``not_dicom``            no             any other file that is not DICOM or an image
                                        (``README.txt``, ...)
=======================  =============  =================================================

Inputs inside the output folder (our own masks, on a rerun) are not listed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.csvsafe import csv_safe

__all__ = [
    "EXIT_NOT_ANALYSED",
    "NOT_ANALYSED_CODES",
    "SKIPPED_COLUMNS",
    "SKIPPED_CSV",
    "SkippedInput",
    "skipped_inputs",
    "write_skipped_csv",
]

SKIPPED_CSV = "skipped.csv"
SKIPPED_COLUMNS: tuple[str, ...] = ("path", "series_uid", "code", "not_analysed", "reason")
#: Exit status of a batch where no case failed but some inputs were not analysed
#: (precedence: failed 1 > not analysed 4 > needs review 3 > ok 0).
EXIT_NOT_ANALYSED = 4
#: Codes of skipped inputs that always count as "not analysed" (see the module table).
NOT_ANALYSED_CODES: frozenset[str] = frozenset(
    {"inconsistent", "too_few_slices", "unreadable", "corrupt_file", "cannot_read"}
)
#: Suffixes of files that claim to be DICOM: such a file that is not DICOM is corrupt.
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass(frozen=True)
class SkippedInput:
    """One series or file discovery did not turn into a case.

    Attributes:
        path: Folder of the series or path of the file.
        series_uid: SeriesInstanceUID of a DICOM series (``""`` for other files).
        code: Machine-readable reason (see the module table).
        reason: Human-readable reason.
        not_analysed: True when the input counts as "not analysed" (exit code 4).
    """

    path: str
    series_uid: str
    code: str
    reason: str
    not_analysed: bool

    def row(self) -> list[str]:
        """Values in :data:`SKIPPED_COLUMNS` order (input-derived cells formula-safe)."""
        return [
            csv_safe(self.path),
            csv_safe(self.series_uid),
            self.code,
            "true" if self.not_analysed else "false",
            csv_safe(" ".join(self.reason.split())),
        ]


def _file_code(path: str, reason: str) -> str:
    """Code of a file discovery skipped, from its reason (see :mod:`medsnowball.io.discovery`)."""
    if reason.startswith("DICOMDIR or index file"):
        return "index_file"
    if reason.startswith("data file of a header-plus-data"):
        return "data_file"
    if reason == "DICOM object without image pixel data":
        return "no_pixel_data"
    if reason.startswith("not a DICOM file"):
        return "corrupt_file" if path.lower().endswith(_DICOM_SUFFIXES) else "not_dicom"
    if reason.startswith("cannot read file"):
        return "cannot_read"
    return "corrupt_file"


def _inside(path: str, root: Path | None) -> bool:
    if root is None:
        return False
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False


def skipped_inputs(case_list: Any, out_dir: Path | None = None) -> list[SkippedInput]:
    """The skipped inputs of a :class:`~medsnowball.io.CaseList`, classified.

    Args:
        case_list: From :func:`medsnowball.io.find_cases` (``rows`` with ``selected``
            False, ``skipped_files``); any object with those attributes.
        out_dir: The batch output folder: inputs inside it are left out.

    Returns:
        Series rows first (in the list's order), then files.
    """
    root = out_dir.resolve() if out_dir is not None else None
    rows = list(getattr(case_list, "rows", None) or [])
    studies_with_case = {r.study for r in rows if r.selected and r.study != "-"}
    out: list[SkippedInput] = []
    for r in rows:
        if r.selected or _inside(r.source, root):
            continue
        code = str(r.code)
        if code == "not_axial":
            lost = r.study == "-" or r.study not in studies_with_case
        else:
            lost = code in NOT_ANALYSED_CODES
        uid = r.series_uid if r.kind == "dicom" and r.series_uid != "(none)" else ""
        out.append(SkippedInput(str(r.source), uid, code, str(r.reason), lost))
    for path, reason in getattr(case_list, "skipped_files", None) or []:
        if _inside(str(path), root):
            continue
        code = _file_code(str(path), str(reason))
        out.append(SkippedInput(str(path), "", code, str(reason), code in NOT_ANALYSED_CODES))
    return out


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SKIPPED_COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()


def write_skipped_csv(path: Path, items: Iterable[SkippedInput]) -> Path:
    """Write ``skipped.csv`` (header always present) atomically.

    Args:
        path: Destination, normally ``OUT/skipped.csv``.
        items: The skipped inputs, in order.

    Returns:
        ``path``.
    """
    return atomic_write_text(path, _csv_text(item.row() for item in items))
