"""Turn paths into cases (:func:`find_cases`, :func:`describe`) and cases into volumes.

``find_cases`` = :func:`~medsnowball.io.discovery.discover` + the selection rules of
:mod:`medsnowball.io.selection` (one DICOM series per study) + every NIfTI / MetaImage /
NRRD file as a case of its own. ``load_case`` / ``load_ct`` read the pixels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medsnowball.core.errors import (
    CorruptFileError,
    InconsistentSeriesError,
    NoSeriesFoundError,
    UnsupportedModalityError,
)
from medsnowball.core.volume import CTVolume
from medsnowball.io.dicom_headers import NotDicomError, read_header
from medsnowball.io.dicom_loader import DEFAULT_MAX_BYTES, load_dicom_series
from medsnowball.io.discovery import Discovery, discover
from medsnowball.io.image_files import image_kind, load_image, probe_image
from medsnowball.io.selection import (
    CaseInput,
    SeriesVerdict,
    dicom_case_id,
    evaluate_series,
    image_case_id,
    rank_key,
    sanitize_stem,
    stem_of,
    study_key,
    why_not_preferred,
)

__all__ = [
    "CaseList",
    "SeriesRow",
    "describe",
    "find_cases",
    "format_table",
    "load_case",
    "load_ct",
]

logger = logging.getLogger(__name__)

PathsLike = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


@dataclass(frozen=True)
class SeriesRow:
    """One line of ``medsnowball info``: a series or image file and what happened to it.

    Attributes:
        study: Identifier-free study label (``st_`` + hash of the StudyInstanceUID).
        series_uid: SeriesInstanceUID (file stem for image files).
        description: SeriesDescription (file name for image files).
        modality: Modality ("?" when missing).
        n_slices: Number of slices.
        slice_thickness_mm: Slice thickness (or step) in mm, if known.
        orientation: axial / coronal / sagittal / oblique / unknown.
        selected: Whether this series became a case.
        reason: Why it was (not) selected.
        code: Machine-readable reason (see ``selection.ReasonCode``).
        case_id: The case id when selected.
        kind: dicom / nifti / metaimage / nrrd.
        source: Folder of the series or the image path.
    """

    study: str
    series_uid: str
    description: str
    modality: str
    n_slices: int
    slice_thickness_mm: float | None
    orientation: str
    selected: bool
    reason: str
    code: str
    case_id: str | None
    kind: str
    source: str


@dataclass
class CaseList:
    """Result of :func:`find_cases`.

    Attributes:
        cases: Selected cases (one per DICOM study, one per image file), sorted by source.
        rows: Every series and image file found, selected or not, with reasons.
        skipped_files: ``(path, reason)`` for files that were not images at all.
    """

    cases: list[CaseInput] = field(default_factory=list)
    rows: list[SeriesRow] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    ranks: dict[str, tuple[object, ...]] = field(default_factory=dict, repr=False)

    def best(self) -> CaseInput | None:
        """The single best case: DICOM winners by the selection ranking, then image files."""
        if not self.cases:
            return None
        return min(self.cases, key=lambda c: self.ranks.get(c.case_id, (1, c.source)))

    @property
    def skipped(self) -> list[SeriesRow]:
        """Rows of the series and image files that were not selected."""
        return [r for r in self.rows if not r.selected]

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[CaseInput]:
        return iter(self.cases)


def _common_folder(files: Iterable[str]) -> str:
    return os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])


def _dicom_row(v: SeriesVerdict, selected: bool, reason: str, code: str) -> SeriesRow:
    s = v.series
    return SeriesRow(
        study=study_key(s.study_uid),
        series_uid=s.first.series_uid or "(none)",
        description=s.description,
        modality=s.modality or "?",
        n_slices=s.n_slices,
        slice_thickness_mm=v.thickness,
        orientation=v.orientation,
        selected=selected,
        reason=reason,
        code=code,
        case_id=dicom_case_id(s.series_uid) if selected else None,
        kind="dicom",
        source=_common_folder(s.files),
    )


def _dicom_case(v: SeriesVerdict) -> CaseInput:
    s = v.series
    return CaseInput(
        case_id=dicom_case_id(s.series_uid),
        source=_common_folder(s.files),
        kind="dicom",
        files=s.files,
        study_uid=s.study_uid or None,
        series_uid=s.first.series_uid or None,
        description=s.description,
        n_slices=s.n_slices,
        warnings=tuple(v.warnings),
    )


def _select_dicom(disc: Discovery, out: CaseList) -> None:
    verdicts = [evaluate_series(s) for s in disc.series]
    by_study: dict[str, list[SeriesVerdict]] = {}
    for v in verdicts:
        if v.eligible:
            by_study.setdefault(v.series.study_uid, []).append(v)
        else:
            out.rows.append(_dicom_row(v, False, v.reason, v.code))
    for group in by_study.values():
        group.sort(key=rank_key)
        winner = group[0]
        out.cases.append(_dicom_case(winner))
        out.ranks[dicom_case_id(winner.series.series_uid)] = (0, *rank_key(winner))
        why = "selected" if len(group) == 1 else "selected: best of the study's eligible series"
        out.rows.append(_dicom_row(winner, True, why, "ok"))
        for loser in group[1:]:
            out.rows.append(
                _dicom_row(loser, False, why_not_preferred(loser, winner), "not_preferred")
            )


# Unsigned integer images without a rescale cannot hold HU air: label maps and masks
# (e.g. our own lungs.nii.gz / nodules.nii.gz outputs), never CT in HU. A rescaled
# unsigned NIfTI reports a float pixel type, so it is not caught here.
_LABEL_PIXEL_TYPES = frozenset({"8-bit unsigned integer", "16-bit unsigned integer"})


def _select_images(disc: Discovery, out: CaseList, used: set[str], keep_names: bool) -> None:
    for path in disc.images:
        kind = image_kind(path) or "nifti"
        stem = stem_of(path)
        try:
            info = probe_image(path)
        except (CorruptFileError, FileNotFoundError) as exc:
            out.rows.append(
                SeriesRow(
                    "-",
                    stem,
                    path.name,
                    "?",
                    0,
                    None,
                    "unknown",
                    False,
                    f"unreadable: {exc}",
                    "unreadable",
                    None,
                    kind,
                    str(path),
                )
            )
            continue
        if info.pixel_type in _LABEL_PIXEL_TYPES:
            out.rows.append(
                SeriesRow(
                    "-",
                    stem,
                    path.name,
                    "?",
                    info.size_xyz[2] if len(info.size_xyz) >= 3 else 1,
                    None,
                    "unknown",
                    False,
                    f"not a CT in HU: {info.pixel_type} pixels cannot hold air (-1000 HU); "
                    "looks like a label map or mask",
                    "label_map",
                    None,
                    kind,
                    str(path),
                )
            )
            continue
        base = sanitize_stem(stem) if keep_names else image_case_id(path)
        case_id, n = base, 2
        while case_id in used:
            case_id, n = f"{base}_{n}", n + 1
        used.add(case_id)
        n_slices = info.size_xyz[2] if len(info.size_xyz) >= 3 else 1
        thick = info.spacing_xyz[2] if len(info.spacing_xyz) >= 3 else None
        out.cases.append(
            CaseInput(
                case_id=case_id,
                source=str(path),
                kind=kind,  # type: ignore[arg-type]
                files=(str(path),),
                study_uid=None,
                series_uid=stem,
                description=path.name,
                n_slices=n_slices,
            )
        )
        out.rows.append(
            SeriesRow(
                "-",
                stem,
                path.name,
                "CT",
                n_slices,
                thick,
                "n/a",
                True,
                "image file",
                "ok",
                case_id,
                kind,
                str(path),
            )
        )


def find_cases(
    paths: PathsLike, *, discovery: Discovery | None = None, keep_names: bool = False
) -> CaseList:
    """Find the cases to analyse under ``paths``.

    Case ids are pseudonymous: ``ct_<hash of the SeriesInstanceUID>`` for DICOM,
    ``img_<hash of the resolved path>`` for image files (see
    :func:`~medsnowball.io.selection.image_case_id`), so no patient name in a file name
    reaches the output folder names.

    Args:
        paths: Files and/or folders (searched recursively).
        discovery: A previous :func:`discover` result to reuse instead of walking again.
        keep_names: Case ids of image files from their sanitised file stems instead
            (``DOE^JOHN.nii.gz`` -> ``DOE_JOHN``): only for files named without patient
            data, e.g. LUNA16's ``<seriesuid>.mhd``. DICOM case ids are always hashed.

    Returns:
        A :class:`CaseList`: one case per DICOM study (the series the selection rules
        prefer) and one per NIfTI/MetaImage/NRRD file, with a row and a reason for every
        series or file, selected or not.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    disc = discovery if discovery is not None else discover(paths)
    out = CaseList(skipped_files=list(disc.skipped))
    _select_dicom(disc, out)
    _select_images(disc, out, {c.case_id for c in out.cases}, keep_names)
    out.cases.sort(key=lambda c: (c.source, c.case_id))
    out.rows.sort(key=lambda r: (r.source, r.study, not r.selected, r.series_uid))
    return out


def describe(paths: PathsLike) -> list[SeriesRow]:
    """Rows for ``medsnowball info``: every series / image file and whether it was selected."""
    return find_cases(paths).rows


def format_table(rows: list[SeriesRow]) -> str:
    """Plain-text table of :func:`describe` rows (no patient names; study as a hash)."""
    header = ("study", "series", "description", "mod", "slices", "thick", "orient", "sel", "reason")
    lines = [header]
    for r in rows:
        uid = r.series_uid if len(r.series_uid) <= 24 else "..." + r.series_uid[-21:]
        thick = f"{r.slice_thickness_mm:g}" if r.slice_thickness_mm else "?"
        lines.append(
            (
                r.study,
                uid,
                r.description[:24],
                r.modality,
                str(r.n_slices),
                thick,
                r.orientation,
                "yes" if r.selected else "no",
                r.reason,
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in lines
    )


def load_case(
    case: CaseInput,
    *,
    max_workers: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    canonical: bool = True,
) -> CTVolume:
    """Load the pixels of a case.

    Args:
        case: From :func:`find_cases`.
        max_workers: Decoding threads for DICOM.
        max_bytes: Refuse images larger than this (bytes) before allocating.
        canonical: Bring the image onto the canonical axial LPS grid (default; see
            :mod:`medsnowball.io.orient`); False keeps the stored grid.

    Returns:
        The :class:`CTVolume`; ``case.warnings`` are included in its warnings. When it was
        reoriented, ``stored_geometry`` is the file's grid and ``quality`` says so.

    Raises:
        InconsistentSeriesError, CorruptFileError, MissingCodecError, ImageTooLargeError:
            See :func:`~medsnowball.io.dicom_loader.load_dicom_series` and
            :func:`~medsnowball.io.image_files.load_image`.
    """
    if case.kind == "dicom":
        return load_dicom_series(
            list(case.files),
            source=case.source,
            max_workers=max_workers,
            max_bytes=max_bytes,
            warnings=case.warnings,
            canonical=canonical,
        )
    return load_image(
        case.files[0], max_bytes=max_bytes, warnings=case.warnings, canonical=canonical
    )


def _no_case_error(path: Path, found: CaseList) -> Exception:
    codes = {r.code for r in found.rows}
    reasons = "; ".join(f"{r.source}: {r.reason}" for r in found.rows[:5])
    files = "; ".join(f"{p}: {why}" for p, why in found.skipped_files[:5])
    if codes & {"too_few_slices", "inconsistent"}:
        return InconsistentSeriesError(
            f"{path}: no series forms a usable CT volume ({reasons}). Export complete series."
        )
    if codes and codes <= {"modality", "no_modality_not_ct", "secondary_capture", "not_image"}:
        return UnsupportedModalityError(
            f"{path} holds no CT images ({reasons}); medsnowball analyses chest CT only."
        )
    detail = reasons or files or "the folder is empty"
    return NoSeriesFoundError(
        f"No CT series or image file found under {path} ({detail}). Expected a folder of "
        "DICOM CT slices or a .nii/.nii.gz/.mhd/.mha/.nrrd file."
    )


def load_ct(
    path: str | os.PathLike[str],
    *,
    max_workers: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    canonical: bool = True,
) -> CTVolume:
    """Load one CT from a file or a folder.

    Whatever the file stores, the volume is brought onto the canonical axial LPS grid
    (:func:`medsnowball.io.orient.to_canonical`) unless ``canonical`` is False.

    * An image file (``.nii``, ``.nii.gz``, ``.mhd``, ``.mha``, ``.nrrd``): loaded whole.
    * A DICOM file: a multi-frame file is loaded alone; a single-frame file brings in the
      other files of its series found under the same folder.
    * A folder: discovered and the single best series selected (see
      :mod:`medsnowball.io.selection`; across several studies, the best-ranked one, with
      a logged warning).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NoSeriesFoundError: Nothing usable (empty folder, only junk).
        UnsupportedModalityError: Only non-CT images (e.g. MR-only).
        InconsistentSeriesError, CorruptFileError, MissingCodecError, ImageTooLargeError:
            From loading.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; expected a CT file or folder.")
    if p.is_file() and image_kind(p) is not None:
        return load_image(p, max_bytes=max_bytes, canonical=canonical)
    if p.is_file():
        return _load_dicom_file(
            p, max_workers=max_workers, max_bytes=max_bytes, canonical=canonical
        )
    found = find_cases([p])
    best = found.best()
    if best is None:
        raise _no_case_error(p, found)
    if len(found.cases) > 1:
        logger.warning(
            "%s holds %d cases; loading the best-ranked one, %s (use find_cases for all).",
            p,
            len(found.cases),
            best.case_id,
        )
    return load_case(best, max_workers=max_workers, max_bytes=max_bytes, canonical=canonical)


def _load_dicom_file(
    p: Path, *, max_workers: int | None, max_bytes: int, canonical: bool
) -> CTVolume:
    """Load the series of one DICOM file (the file alone when it is multi-frame)."""
    try:
        header = read_header(p)
    except NotDicomError as exc:
        raise NoSeriesFoundError(
            f"{p} is {exc}; expected DICOM or a NIfTI/MetaImage/NRRD image."
        ) from exc
    disc = discover([p] if header.number_of_frames > 1 else [p.parent])
    series = [s for s in disc.series if p.resolve() in {Path(f).resolve() for f in s.files}]
    if not series:
        raise NoSeriesFoundError(f"{p} holds no CT image data.")
    verdict = evaluate_series(series[0])
    if not verdict.eligible:
        rows = CaseList(rows=[_dicom_row(verdict, False, verdict.reason, verdict.code)])
        raise _no_case_error(p, rows)
    return load_case(
        _dicom_case(verdict), max_workers=max_workers, max_bytes=max_bytes, canonical=canonical
    )
