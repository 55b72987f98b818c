"""Assemble a DICOM series (single-frame files or multi-frame Enhanced CT) into a CTVolume.

Rules (also in docs/io.md):

* Slices are ordered by their position along the slice normal
  ``n = row_cosines x column_cosines`` (never by file name or InstanceNumber). The
  volume's direction is ``[row, column, n]``, its origin the first slice's position.
* A series needs at least :data:`MIN_SLICES` slices, one Rows x Columns size, one
  ImageOrientationPatient and one PixelSpacing; otherwise InconsistentSeriesError.
* Duplicate positions (closer than 0.01 mm): identical pixels -> the copy is dropped
  with a warning; different pixels -> InconsistentSeriesError.
* Duplicate SOPInstanceUIDs: two files (left after dropping identical copies) that share
  one SOPInstanceUID -> InconsistentSeriesError naming the files (a DICOM SEG/SR would
  reference one instance for all of them).
* Uneven spacing: when a step between neighbouring slices deviates from the median step
  by more than :data:`IRREGULAR_TOLERANCE` (10 %), the volume is resampled linearly along
  the normal onto a regular grid spanning the same extent with the step closest to the
  median, and a warning is added. A gap larger than :data:`MAX_GAP_FACTOR` (3) x the
  median step is an InconsistentSeriesError (too much would be invented).
* Gantry tilt (slice positions drifting in-plane, i.e. not along ``n``): when any slice
  is offset in-plane by more than :data:`TILT_TOLERANCE_PX` (0.1 pixel) from the line
  through the first slice along ``n``, each slice is shifted back in-plane by linear
  interpolation (out-of-field pixels become air) so that the grid is orthogonal; a
  warning names the tilt angle.
* Output dtype: int16 when every slice has RescaleSlope 1 and an integral intercept
  (values clipped to [-1024, 32767]), else float32 (clipped at -1024 from below).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray

from medsnowball.core.errors import ImageTooLargeError, InconsistentSeriesError
from medsnowball.core.quality import SEVERITY_INFO, QualityFlag
from medsnowball.core.volume import AcquisitionInfo, CTVolume, ImageGeometry, PatientInfo
from medsnowball.io.dicom_headers import DicomHeader, FrameInfo, read_header_cached
from medsnowball.io.dicom_pixels import AIR_HU, check_codec, decode_frames, to_hu
from medsnowball.io.orient import to_canonical

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IRREGULAR_TOLERANCE",
    "MAX_GAP_FACTOR",
    "MIN_SLICES",
    "TILT_TOLERANCE_PX",
    "load_dicom_series",
]

logger = logging.getLogger(__name__)

MIN_SLICES = 2
IRREGULAR_TOLERANCE = 0.10
MAX_GAP_FACTOR = 3.0
TILT_TOLERANCE_PX = 0.1
DUPLICATE_TOLERANCE_MM = 0.01
#: Largest volume (bytes, after decoding) a loader allocates; larger headers are refused.
DEFAULT_MAX_BYTES = 8 * 1024**3


@dataclass(frozen=True)
class _Slice:
    header: DicomHeader
    frame_index: int
    frame: FrameInfo
    position: NDArray[np.float64]


def _series_name(headers: Sequence[DicomHeader]) -> str:
    uid = headers[0].series_uid if headers else ""
    folder = os.path.dirname(headers[0].path) if headers else "?"
    return f"series {uid or '(no SeriesInstanceUID)'} in {folder}"


def _collect(headers: Sequence[DicomHeader], name: str) -> list[_Slice]:
    slices: list[_Slice] = []
    for h in headers:
        for idx, f in enumerate(h.frames):
            if f.position is None:
                raise InconsistentSeriesError(
                    f"{h.path} (frame {idx + 1}) of {name} has no ImagePositionPatient, so "
                    "its slice cannot be placed. Re-export the series with full headers."
                )
            slices.append(_Slice(h, idx, f, np.asarray(f.position, dtype=np.float64)))
    if len(slices) < MIN_SLICES:
        raise InconsistentSeriesError(
            f"{name} has {len(slices)} slice(s); a CT volume needs at least {MIN_SLICES}. "
            "Export the whole series, not a single image."
        )
    return slices


def _check_uniform(slices: list[_Slice], name: str) -> tuple[NDArray[Any], tuple[float, float]]:
    """Check one size, orientation and pixel spacing; return (row, col, normal), spacing."""
    first = slices[0]
    sizes = {(s.header.rows, s.header.columns) for s in slices}
    if len(sizes) > 1:
        raise InconsistentSeriesError(
            f"{name} mixes image sizes {sorted(sizes)} (rows, columns); expected one size. "
            "It probably holds several reconstructions; export them as separate series."
        )
    ori = first.frame.orientation
    if ori is None:
        raise InconsistentSeriesError(
            f"{first.header.path} of {name} has no ImageOrientationPatient; cannot orient it."
        )
    ref = np.asarray(ori)
    for s in slices:
        o = s.frame.orientation
        if o is None or not np.allclose(o, ref, atol=1e-4):
            raise InconsistentSeriesError(
                f"{name} mixes slice orientations ({s.header.path} has {o}, the first file "
                f"{ref.tolist()}); expected one ImageOrientationPatient for all slices."
            )
    sp = first.frame.pixel_spacing
    if sp is None or min(sp) <= 0:
        raise InconsistentSeriesError(
            f"{first.header.path} of {name} has no valid PixelSpacing ({sp}); cannot size it."
        )
    for s in slices:
        o_sp = s.frame.pixel_spacing
        if o_sp is None or not np.allclose(o_sp, sp, rtol=1e-4, atol=1e-5):
            raise InconsistentSeriesError(
                f"{name} mixes pixel spacings ({s.header.path}: {o_sp}, first file: {sp})."
            )
    row = ref[:3] / np.linalg.norm(ref[:3])
    col = ref[3:] / np.linalg.norm(ref[3:])
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 1e-6:
        raise InconsistentSeriesError(
            f"{name}: ImageOrientationPatient rows and columns are parallel."
        )
    normal /= np.linalg.norm(normal)
    return np.stack([row, col, normal], axis=1), (float(sp[0]), float(sp[1]))


def _check_size(slices: list[_Slice], itemsize: int, max_bytes: int, name: str) -> None:
    h = slices[0].header
    need = len(slices) * h.rows * h.columns * itemsize
    for s in {id(x.header): x.header for x in slices}.values():
        claimed = s.rows * s.columns * s.number_of_frames * max(1, s.bits_allocated // 8)
        need = max(need, claimed)
    if need > max_bytes:
        raise ImageTooLargeError(
            f"{name} would need {need / 1024**3:.1f} GiB ({len(slices)} slices of "
            f"{h.rows}x{h.columns}); the limit is {max_bytes / 1024**3:.1f} GiB. The header is "
            "probably corrupt; if the image is real, raise max_bytes."
        )


def _decode_into(out: NDArray[Any], slices: list[_Slice], max_workers: int | None) -> None:
    """Decode every slice into ``out[k]`` (k = index in ``slices``), in parallel by file."""
    by_file: dict[str, list[tuple[int, _Slice]]] = {}
    for k, s in enumerate(slices):
        by_file.setdefault(s.header.path, []).append((k, s))

    def work(items: list[tuple[int, _Slice]]) -> None:
        raw = decode_frames(items[0][1].header)
        for k, s in items:
            to_hu(raw[s.frame_index], s.frame, s.header, out[k])

    groups = list(by_file.values())
    workers = max_workers or min(16, 2 * (os.cpu_count() or 1))
    if workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, groups))
    else:
        for g in groups:
            work(g)


def _dedupe(
    slices: list[_Slice], d: NDArray[np.float64], name: str, warnings: list[str]
) -> tuple[list[_Slice], NDArray[np.float64]]:
    """Drop exact duplicates (same position and pixels); raise on conflicting ones."""
    keep = [0]
    for i in range(1, len(slices)):
        j = keep[-1]
        same_pos = abs(d[i] - d[j]) < DUPLICATE_TOLERANCE_MM and np.allclose(
            slices[i].position, slices[j].position, atol=DUPLICATE_TOLERANCE_MM
        )
        if not same_pos:
            keep.append(i)
            continue
        a = decode_frames(slices[i].header)[slices[i].frame_index]
        b = decode_frames(slices[j].header)[slices[j].frame_index]
        same_px = (
            a.shape == b.shape
            and slices[i].frame.slope == slices[j].frame.slope
            and slices[i].frame.intercept == slices[j].frame.intercept
            and np.array_equal(a, b)
        )
        if not same_px:
            raise InconsistentSeriesError(
                f"{name}: {slices[i].header.path} and {slices[j].header.path} lie at the same "
                f"position {slices[i].position.tolist()} but hold different pixels. The folder "
                "probably mixes two acquisitions; separate them."
            )
    dropped = len(slices) - len(keep)
    if dropped:
        msg = f"Dropped {dropped} duplicate slice(s) (same position and pixels) from {name}."
        warnings.append(msg)
        logger.warning(msg)
    return [slices[i] for i in keep], d[keep]


def _resample_z(
    vol: NDArray[Any], d: NDArray[np.float64], n_out: int
) -> tuple[NDArray[Any], float]:
    """Linear resampling of ``vol`` (slices at ``d``) onto ``n_out`` regular positions."""
    step = float(d[-1] - d[0]) / (n_out - 1)
    targets = d[0] + step * np.arange(n_out)
    out = np.empty((n_out, *vol.shape[1:]), dtype=vol.dtype)
    for k, t in enumerate(targets):
        hi = int(np.clip(np.searchsorted(d, t, side="left"), 1, len(d) - 1))
        lo = hi - 1
        w = float(np.clip((t - d[lo]) / (d[hi] - d[lo]), 0.0, 1.0))
        sl = vol[lo].astype(np.float32) * (1.0 - w) + vol[hi].astype(np.float32) * w
        out[k] = np.rint(sl) if vol.dtype == np.int16 else sl
    return out, step


def _untilt(vol: NDArray[Any], shifts_px: NDArray[np.float64]) -> None:
    """Shift each slice ``k`` in-plane by ``shifts_px[k] = (dj, di)`` pixels, in place."""
    from scipy import ndimage

    for k in range(vol.shape[0]):
        dj, di = shifts_px[k]
        if abs(dj) < 1e-6 and abs(di) < 1e-6:
            continue
        moved = ndimage.shift(
            vol[k].astype(np.float32), (dj, di), order=1, mode="constant", cval=AIR_HU
        )
        vol[k] = np.rint(moved) if vol.dtype == np.int16 else moved


def _patient_info(path: str) -> PatientInfo:
    tags = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "StudyDate"]
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
    except (OSError, ValueError, EOFError):
        return PatientInfo()

    def get(kw: str) -> str | None:
        v = ds.get(kw)
        return str(v) if v not in (None, "") else None

    return PatientInfo(
        name=get("PatientName"),
        patient_id=get("PatientID"),
        birth_date=get("PatientBirthDate"),
        sex=get("PatientSex"),
        age=get("PatientAge"),
        study_date=get("StudyDate"),
    )


def _check_unique_instances(slices: list[_Slice], name: str) -> None:
    """Refuse distinct files that share one SOPInstanceUID (the message names the files)."""
    files: dict[str, set[str]] = {}
    for s in slices:
        if s.header.sop_instance_uid:
            files.setdefault(s.header.sop_instance_uid, set()).add(s.header.path)
    shared = [sorted(paths) for paths in files.values() if len(paths) > 1]
    if shared:
        first = shared[0]
        more = f" ({len(shared) - 1} more group(s) like it)" if len(shared) > 1 else ""
        raise InconsistentSeriesError(
            f"{name}: expected one SOPInstanceUID per image, found {len(first)} files with "
            f"different positions or pixels sharing one: {', '.join(first)}{more}. Outputs "
            "that reference the images (DICOM SEG/SR) would point at one image for all of "
            "them. Re-export the series so that every image has its own SOPInstanceUID."
        )


def load_dicom_series(
    series: Sequence[DicomHeader] | Sequence[str | os.PathLike[str]],
    *,
    source: str | None = None,
    max_workers: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    warnings: Sequence[str] = (),
    canonical: bool = True,
) -> CTVolume:
    """Load the slices of one DICOM series into a :class:`CTVolume` (HU, LPS geometry).

    Args:
        series: Headers (from discovery) or file paths of the instances, in any order.
        source: Value for ``CTVolume.source`` (default: the folder of the files).
        max_workers: Decoding threads (default ``min(16, 2 * cpu_count)``).
        max_bytes: Refuse volumes larger than this many bytes before allocating.
        warnings: Notes to carry into ``CTVolume.warnings`` (e.g. from selection).
        canonical: Reorient onto the canonical axial LPS grid (:mod:`medsnowball.io.orient`;
            exact for prone, feet-first, coronal, sagittal); False keeps the series' grid.

    Returns:
        The volume; ``array`` is ``(z, y, x)`` int16 or float32 HU, ``source_files`` the
        instance files in slice order (empty when resampled along z or no longer the ``k``
        planes). Resampling / gantry-tilt correction are in ``warnings`` and ``quality``
        (``slices_resampled``, ``gantry_tilt_corrected``, severity info).

    Raises:
        InconsistentSeriesError: Too few slices, mixed sizes/orientations/spacings,
            conflicting duplicates, files sharing a SOPInstanceUID, missing positions, or
            gaps > 3x the median step.
        ImageTooLargeError: The headers claim more than ``max_bytes``.
        MissingCodecError: Compressed pixel data without an installed decoder.
        CorruptFileError: A file is empty, truncated or undecodable (named).
        ObliqueImageError: ``canonical`` and an axis more than 30 degrees from every axis.
    """
    headers: list[DicomHeader] = [
        h if isinstance(h, DicomHeader) else read_header_cached(h) for h in series
    ]
    if not headers:
        raise InconsistentSeriesError("load_dicom_series got no files; expected a CT series.")
    headers.sort(key=lambda h: h.path)
    name = _series_name(headers)
    notes: list[str] = list(warnings)
    flags: list[QualityFlag] = []
    slices = _collect(headers, name)
    axes, (sp_row, sp_col) = _check_uniform(slices, name)
    row, col, normal = axes[:, 0], axes[:, 1], axes[:, 2]
    all_int = all(s.frame.slope == 1.0 and float(s.frame.intercept).is_integer() for s in slices)
    dtype = np.dtype(np.int16) if all_int else np.dtype(np.float32)
    _check_size(slices, dtype.itemsize, max_bytes, name)
    for h in {h.transfer_syntax: h for h in headers}.values():
        check_codec(h)

    d = np.array([float(np.dot(s.position, normal)) for s in slices])
    order = np.argsort(d, kind="stable")
    slices = [slices[i] for i in order]
    d = d[order]
    slices, d = _dedupe(slices, d, name, notes)
    _check_unique_instances(slices, name)
    if len(slices) < MIN_SLICES:
        raise InconsistentSeriesError(
            f"{name} has {len(slices)} distinct slice position(s); needs {MIN_SLICES}."
        )
    steps = np.diff(d)
    median = float(np.median(steps))
    if steps.max() > MAX_GAP_FACTOR * median:
        k = int(np.argmax(steps))
        raise InconsistentSeriesError(
            f"{name}: gap of {steps[k]:.2f} mm between {slices[k].header.path} and "
            f"{slices[k + 1].header.path}, more than {MAX_GAP_FACTOR:g}x the median slice step "
            f"({median:.2f} mm); about {round(steps[k] / median) - 1} slices are missing. "
            "Re-export the complete series."
        )
    irregular = bool(np.max(np.abs(steps - median)) > IRREGULAR_TOLERANCE * median)

    rel = np.stack([s.position for s in slices]) - slices[0].position
    inplane = rel - np.outer(rel @ normal, normal)
    shifts_px = np.stack([inplane @ col / sp_row, inplane @ row / sp_col], axis=1)
    tilted = bool(np.max(np.abs(shifts_px)) > TILT_TOLERANCE_PX)

    nz, ny, nx = len(slices), headers[0].rows, headers[0].columns
    vol = np.empty((nz, ny, nx), dtype=dtype)
    _decode_into(vol, slices, max_workers)
    files = tuple(s.header.path for s in slices)

    if tilted:
        extent = float(d[-1] - d[0])
        angle = math.degrees(math.atan2(float(np.linalg.norm(inplane[-1])), extent))
        _untilt(vol, shifts_px)
        msg = (
            f"Gantry tilt of about {angle:.1f} deg in {name}: slices were shifted in-plane "
            "onto an orthogonal grid (linear interpolation; pixels moved in from outside "
            "the field of view are air)."
        )
        notes.append(msg)
        flags.append(QualityFlag("gantry_tilt_corrected", msg, SEVERITY_INFO))
        logger.warning(msg)
    if irregular:
        n_out = int(np.rint((d[-1] - d[0]) / median)) + 1
        vol, step = _resample_z(vol, d, n_out)
        msg = (
            f"Uneven slice spacing in {name} (steps {steps.min():.3g}-{steps.max():.3g} mm, "
            f"median {median:.3g} mm): resampled linearly from {nz} to {n_out} slices at "
            f"{step:.4g} mm."
        )
        notes.append(msg)
        flags.append(QualityFlag("slices_resampled", msg, SEVERITY_INFO))
        logger.warning(msg)
        files = ()
    else:
        step = float(d[-1] - d[0]) / (nz - 1)

    first = headers[0]
    thickness = [s.frame.thickness for s in slices if s.frame.thickness]
    geometry = ImageGeometry(
        shape_zyx=vol.shape,  # type: ignore[arg-type]
        spacing_zyx=(step, sp_row, sp_col),
        origin_lps=tuple(slices[0].position.tolist()),  # type: ignore[arg-type]
        direction=axes,
    )
    acquisition = AcquisitionInfo(
        manufacturer=first.manufacturer,
        model=first.model,
        kernel=first.kernel,
        slice_thickness_mm=float(np.median(thickness)) if thickness else None,
        kvp=first.kvp,
        contrast=first.contrast,
    )
    volume = CTVolume(
        array=vol,
        geometry=geometry,
        source=source or os.path.commonpath([os.path.dirname(h.path) for h in headers]),
        study_uid=first.study_uid or None,
        series_uid=first.series_uid or None,
        modality="CT",
        acquisition=acquisition,
        patient=_patient_info(first.path),
        warnings=tuple(notes),
        source_files=files,
        quality=tuple(flags),
    )
    return to_canonical(volume) if canonical else volume
