"""Write every per-case output into ``OUT/<case_id>/``.

Files (format name -> file):

==========  =====================  ============================================
``json``    ``findings.json``      always written, **last**: its presence marks
                                   the case as finished (``--resume``)
``csv``     ``nodules.csv``        one row per nodule
``nifti``   ``lungs.nii.gz``,      label maps on the input grid (key ``nifti``
            ``nodules.nii.gz``     is the lungs file, ``nifti_nodules`` the other)
``html``    ``report.html``        self-contained report
``pdf``     ``report.pdf``         same content as A4 pages
``seg``     ``seg.dcm``            DICOM SEG (DICOM inputs on the source grid)
``sr``      ``sr.dcm``             DICOM SR TID 1500 (same condition)
==========  =====================  ============================================

Every file is written atomically (temporary name, then rename). Outputs that cannot be
produced for this case (a DICOM SEG for a NIfTI input, NIfTI labels the pipeline did not
keep ...) are skipped; the reasons are in :attr:`CaseOutputs.skipped` and, when
unexpected, in ``findings.json``'s ``warnings``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsnowball.core.atomic import atomic_path, atomic_write_text
from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import CaseResult
from medsnowball.core.volume import CTVolume, ImageGeometry
from medsnowball.report.errors import InvalidFindingsError
from medsnowball.report.findings import dumps_findings, findings_dict, validate_findings
from medsnowball.report.tables import write_nodules_csv

logger = logging.getLogger(__name__)

ALL_FORMATS: tuple[str, ...] = ("json", "csv", "nifti", "html", "pdf", "seg", "sr")

FILE_NAMES: dict[str, str] = {
    "json": "findings.json",
    "csv": "nodules.csv",
    "nifti": "lungs.nii.gz",
    "nifti_nodules": "nodules.nii.gz",
    "html": "report.html",
    "pdf": "report.pdf",
    "seg": "seg.dcm",
    "sr": "sr.dcm",
}

#: Nodules beyond this many get no image (HTML) or page (PDF); the table lists all.
MAX_NODULE_IMAGES = 50


class CaseOutputs(dict[str, Path]):
    """``format -> path`` of the files written, plus why others were skipped.

    Attributes:
        skipped: ``format -> reason`` for requested formats that were not written.
        seconds: Wall time per format.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}
        self.seconds: dict[str, float] = {}


def _check_formats(formats: Collection[str]) -> set[str]:
    requested = {str(f).lower() for f in formats}
    unknown = sorted(requested - set(ALL_FORMATS))
    if unknown:
        raise ConfigError(
            f"Unknown output format(s) {unknown}; expected some of {list(ALL_FORMATS)}."
        )
    return requested


def _check_arrays(result: CaseResult, volume: CTVolume) -> None:
    for name in ("lung_labels", "nodule_labels"):
        array = getattr(result, name)
        if array is not None and tuple(np.shape(array)) != volume.shape:
            raise InvalidFindingsError(
                f"CaseResult.{name} of case {result.case_id} has shape {np.shape(array)}, "
                f"expected the CT's shape {volume.shape} (z, y, x). Keep label maps on the "
                "input grid.",
                path=f"$.{name}",
            )


def _default_version() -> str:
    from medsnowball import __version__

    return __version__


def write_case_outputs(
    result: CaseResult,
    volume: CTVolume,
    out_dir: str | os.PathLike[str],
    *,
    formats: Collection[str] = ALL_FORMATS,
    include_patient_info: bool = False,
    medsnowball_version: str | None = None,
) -> CaseOutputs:
    """Write the outputs of one case into ``out_dir`` (the pipeline passes OUT/<case_id>/).

    Args:
        result: The case's result, with ``lung_labels`` / ``nodule_labels`` on the CT grid
            when label maps, images with contours, SEG or SR are wanted.
        volume: The CT the result was computed from (pixels for the images; geometry,
            acquisition, patient fields and ``source_files`` for DICOM outputs).
        out_dir: Folder to write into (created if missing).
        formats: Subset of :data:`ALL_FORMATS`. ``findings.json`` is written in any case,
            last, because its presence tells ``--resume`` the case is complete (an old
            one in ``out_dir`` is removed first).
        include_patient_info: Show the patient's name, ID, birth date ... in report.html
            and report.pdf. Never written to findings.json, nodules.csv or file names.
        medsnowball_version: Version recorded in the outputs (default: installed one).

    Returns:
        A :class:`CaseOutputs` mapping each written format to its path (``nifti`` is
        lungs.nii.gz, ``nifti_nodules`` nodules.nii.gz), with ``skipped`` reasons.

    Raises:
        ConfigError: For an unknown format name.
        InvalidFindingsError: When the result cannot be reported (non-finite measurements,
            label maps on another grid); nothing is written then.
    """
    requested = _check_formats(formats)
    version = medsnowball_version or _default_version()
    out = Path(out_dir)
    _check_arrays(result, volume)
    geometry = result.geometry or volume.geometry
    outputs = CaseOutputs()
    extra_warnings: list[str] = []
    # Build and validate the findings first so that a bad result writes nothing.
    document = findings_dict(result, medsnowball_version=version, geometry=geometry)
    validate_findings(document)
    out.mkdir(parents=True, exist_ok=True)
    # A findings.json from an earlier run must not vouch for a half-rewritten folder.
    (out / FILE_NAMES["json"]).unlink(missing_ok=True)

    def skip(fmt: str, reason: str, *, warn: bool) -> None:
        outputs.skipped[fmt] = reason
        if warn:
            extra_warnings.append(f"{fmt} output skipped: {reason}")
            logger.warning("Case %s: %s output skipped: %s", result.case_id, fmt, reason)
        else:
            logger.info("Case %s: %s output skipped: %s", result.case_id, fmt, reason)

    def timed(fmt: str, start: float) -> None:
        outputs.seconds[fmt] = time.perf_counter() - start

    if "csv" in requested:
        t0 = time.perf_counter()
        outputs["csv"] = write_nodules_csv(result, out / FILE_NAMES["csv"])
        timed("csv", t0)

    if "nifti" in requested:
        t0 = time.perf_counter()
        _write_nifti(result, geometry, out, outputs, skip, volume.stored_geometry)
        timed("nifti", t0)

    if requested & {"seg", "sr"}:
        t0 = time.perf_counter()
        _write_dicom(result, volume, out, requested, document, version, outputs, skip)
        timed("dicom", t0)

    if requested & {"html", "pdf"}:
        t0 = time.perf_counter()
        _write_reports(
            result,
            volume,
            out,
            requested,
            include_patient_info,
            version,
            tuple(extra_warnings),
            outputs,
        )
        timed("reports", t0)

    if extra_warnings:
        document = findings_dict(
            result, medsnowball_version=version, geometry=geometry, extra_warnings=extra_warnings
        )
        validate_findings(document)
    t0 = time.perf_counter()
    outputs["json"] = atomic_write_text(out / FILE_NAMES["json"], dumps_findings(document))
    timed("json", t0)
    return outputs


def _write_nifti(
    result: CaseResult,
    geometry: Any,
    out: Path,
    outputs: CaseOutputs,
    skip: Any,
    stored: ImageGeometry | None = None,
) -> None:
    """Write the label maps; on the file's own grid when the loader reoriented the input."""
    from medsnowball.io import write_image
    from medsnowball.io.orient import to_stored_grid

    def write(labels: Any, dtype: Any, path: Path) -> Path:
        arr = np.asarray(labels, dtype=dtype)
        if stored is None:
            return write_image(arr, path, geometry)
        return write_image(to_stored_grid(arr, geometry, stored), path, stored)

    if result.lung_labels is not None:
        outputs["nifti"] = write(result.lung_labels, np.uint8, out / FILE_NAMES["nifti"])
    else:
        skip("nifti", "the result carries no lung labels (lung_labels is None)", warn=True)
    if result.nodule_labels is not None:
        outputs["nifti_nodules"] = write(
            result.nodule_labels, np.uint16, out / FILE_NAMES["nifti_nodules"]
        )
    else:
        skip(
            "nifti_nodules",
            "the result carries no nodule labels (nodule_labels is None)",
            warn=True,
        )


_IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs")

#: What highdicom raises when a source header does not support a derived object.
_HIGHDICOM_ERRORS = (ValueError, TypeError, KeyError, AttributeError)


def _describe_failure(exc: BaseException, volume: CTVolume, headers: Sequence[Any]) -> str:
    """``"highdicom rejected the source headers: <Type>: <message>"``, patient fields redacted."""
    message = f"{type(exc).__name__}: {exc}"
    secrets = {volume.patient.name, volume.patient.patient_id, volume.patient.birth_date}
    for ds in headers[:1]:
        secrets.update(str(ds.get(kw, "") or "") for kw in _IDENTIFYING_KEYWORDS)
    for value in sorted((str(v) for v in secrets if v and len(str(v)) >= 2), key=len, reverse=True):
        message = message.replace(value, "<redacted>")
    return f"highdicom rejected the source headers: {message[:300]}"


@contextlib.contextmanager
def _quiet_person_names() -> Iterator[None]:
    """Silence highdicom's warning about unusual person names: it quotes the patient's name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        yield


def _write_dicom(
    result: CaseResult,
    volume: CTVolume,
    out: Path,
    requested: set[str],
    document: dict[str, Any],
    version: str,
    outputs: CaseOutputs,
    skip: Any,
) -> None:
    from medsnowball.report.dicom_common import (
        read_source_headers,
        source_grid_problem,
        source_reference_problem,
    )
    from medsnowball.report.dicom_seg import SegmentationBuild, build_segmentation
    from medsnowball.report.dicom_sr import build_sr

    wanted = sorted(requested & {"seg", "sr"})
    if volume.stored_geometry is not None:
        # The loader reoriented the series: SEG and SR describe the source slices' grid.
        result, volume = _on_stored_grid(result, volume, volume.stored_geometry)
    if not volume.source_files:
        for fmt in wanted:
            skip(fmt, "the input is not a DICOM series", warn=False)
        return
    headers = read_source_headers(volume)
    problem = source_reference_problem(headers)
    if problem is not None:
        for fmt in wanted:
            skip(fmt, problem, warn=True)
        return
    problem = source_grid_problem(volume, headers)
    if problem is not None:
        for fmt in wanted:
            skip(fmt, f"the analysed grid is not the source DICOM grid: {problem}", warn=True)
        return
    seg: SegmentationBuild | None = None
    if "seg" in requested:
        try:
            with _quiet_person_names():
                seg = build_segmentation(
                    result, headers, document=document, medsnowball_version=version
                )
        except _HIGHDICOM_ERRORS as exc:
            skip("seg", _describe_failure(exc, volume, headers), warn=True)
            seg = None
        else:
            if seg is None:
                skip("seg", "no lung or nodule labels to store", warn=True)
            else:
                with atomic_path(out / FILE_NAMES["seg"]) as tmp:
                    seg.dataset.save_as(tmp, enforce_file_format=True)
                outputs["seg"] = out / FILE_NAMES["seg"]
    if "sr" in requested:
        try:
            with _quiet_person_names():
                sr = build_sr(
                    result,
                    result.geometry or volume.geometry,
                    headers,
                    seg,
                    document=document,
                    medsnowball_version=version,
                )
        except _HIGHDICOM_ERRORS as exc:
            skip("sr", _describe_failure(exc, volume, headers), warn=True)
            return
        with atomic_path(out / FILE_NAMES["sr"]) as tmp:
            sr.save_as(tmp, enforce_file_format=True)
        outputs["sr"] = out / FILE_NAMES["sr"]


def _on_stored_grid(
    result: CaseResult, volume: CTVolume, stored: ImageGeometry
) -> tuple[CaseResult, CTVolume]:
    """The result and volume mapped back onto ``stored`` (the file's own grid)."""
    from medsnowball.io.orient import to_stored_grid, to_stored_volume

    grid = result.geometry or volume.geometry

    def back(labels: Any) -> Any:
        return None if labels is None else to_stored_grid(np.asarray(labels), grid, stored)

    mapped = dataclasses.replace(
        result,
        geometry=stored,
        lung_labels=back(result.lung_labels),
        nodule_labels=back(result.nodule_labels),
    )
    return mapped, to_stored_volume(volume)


def _write_reports(
    result: CaseResult,
    volume: CTVolume,
    out: Path,
    requested: set[str],
    include_patient_info: bool,
    version: str,
    extra_warnings: tuple[str, ...],
    outputs: CaseOutputs,
) -> None:
    from medsnowball.report.context import build_context
    from medsnowball.report.render import CaseView

    context = build_context(
        result,
        volume,
        include_patient_info=include_patient_info,
        medsnowball_version=version,
        extra_warnings=extra_warnings,
    )
    view = CaseView(volume, result.lung_labels, result.nodule_labels)
    pictured = sorted(result.nodules, key=lambda n: n.id)[:MAX_NODULE_IMAGES]
    omitted = len(result.nodules) - len(pictured)
    if "html" in requested:
        from medsnowball.report.html import render_html
        from medsnowball.report.render import render_images

        images = render_images(view, pictured, overview_nodules=result.nodules)
        html = render_html(context, images, omitted_images=omitted)
        outputs["html"] = atomic_write_text(out / FILE_NAMES["html"], html)
    if "pdf" in requested:
        from medsnowball.report.pdf import write_pdf

        outputs["pdf"] = out / FILE_NAMES["pdf"]
        write_pdf(outputs["pdf"], context, view, result.nodules, nodule_pages=pictured)


__all__ = ["ALL_FORMATS", "FILE_NAMES", "MAX_NODULE_IMAGES", "CaseOutputs", "write_case_outputs"]
