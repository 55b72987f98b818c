"""Shared pieces of the DICOM SEG and SR writers: source headers, grid check, UIDs, codes.

A SEG frame must correspond pixel-for-pixel to a source image, so both writers run only
when the analysed grid *is* the source grid: one source file per z slice, in slice
order (``CTVolume.source_files``), with matching rows, columns, pixel spacing,
orientation and positions. A loader that resampled the series (missing slices, gantry
tilt, irregular spacing) breaks that correspondence; the writers then skip with a reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from medsnowball.core.findings import CaseResult
from medsnowball.core.volume import CTVolume

#: Series numbers given to the derived series (high, to sort after the source series).
SEG_SERIES_NUMBER = 9001
SR_SERIES_NUMBER = 9002

MANUFACTURER = "medsnowball"
#: Fixed UID identifying medsnowball as the observer device of its SRs.
DEVICE_UID = str(generate_uid(entropy_srcs=["medsnowball", "observer-device"]))
MODEL_NAME = "medsnowball"
DEVICE_SERIAL_NUMBER = "0"

#: Private coding scheme for concepts without a standard code (DICOM PS3.16: private
#: schemes start with "99"). Documented in docs/findings.md.
PRIVATE_SCHEME = "99MEDSNOWBALL"
CODE_LUNG_RADS = Code("LUNGRADS", PRIVATE_SCHEME, "Lung-RADS v2022 category")
CODE_NODULE_TYPE = Code("NODTYPE", PRIVATE_SCHEME, "Nodule attenuation type")
CODE_DETECTION_SCORE = Code("DETSCORE", PRIVATE_SCHEME, "Detection score")
CODE_SOLID_COMPONENT = Code("SOLIDCOMP", PRIVATE_SCHEME, "Solid component mean diameter")
NODULE_TYPE_CODES: dict[str, Code] = {
    "solid": Code("SOLID", PRIVATE_SCHEME, "Solid nodule"),
    "part_solid": Code("PARTSOLID", PRIVATE_SCHEME, "Part-solid nodule"),
    "ground_glass": Code("GGN", PRIVATE_SCHEME, "Ground-glass nodule"),
}


def lung_rads_code(category: str) -> Code:
    """Private code of a Lung-RADS category, e.g. ``LR-4A`` / "Lung-RADS 4A"."""
    return Code(f"LR-{category}", PRIVATE_SCHEME, f"Lung-RADS {category}")


#: UIDs a derived object needs to reference a source image.
REQUIRED_UIDS: tuple[str, ...] = (
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
)

#: Type 2 attributes (present, possibly empty) that highdicom copies from the source;
#: stripped or anonymised files sometimes drop them entirely.
TYPE2_DEFAULTS: dict[str, str] = {
    "PatientName": "",
    "PatientID": "",
    "PatientBirthDate": "",
    "PatientSex": "",
    "StudyDate": "",
    "StudyTime": "",
    "StudyID": "",
    "AccessionNumber": "",
    "ReferringPhysicianName": "",
}


def read_source_headers(volume: CTVolume) -> list[Dataset]:
    """Read the headers (no pixel data) of ``volume.source_files``, in slice order.

    Type 2 attributes that the files lack entirely (:data:`TYPE2_DEFAULTS`) are added,
    empty, to the in-memory copies (the files are not touched), as DICOM allows.

    Raises:
        pydicom.errors.InvalidDicomError, OSError: When a file cannot be read.
    """
    import pydicom

    headers: list[Dataset] = [
        pydicom.dcmread(f, stop_before_pixels=True) for f in volume.source_files
    ]
    for ds in headers:
        for keyword, value in TYPE2_DEFAULTS.items():
            if keyword not in ds:
                setattr(ds, keyword, value)
    return headers


def source_reference_problem(headers: Sequence[Dataset]) -> str | None:
    """Explain why the source images cannot be referenced (missing UIDs), or ``None``."""
    for k, ds in enumerate(headers):
        missing = [kw for kw in REQUIRED_UIDS if not str(ds.get(kw, "") or "").strip()]
        if missing:
            return (
                f"source slice {k} has no {', '.join(missing)} (anonymised or stripped "
                "files?), so a DICOM object cannot reference it"
            )
    return None


def _floats(ds: Dataset, keyword: str) -> list[float] | None:
    value = ds.get(keyword)
    if value is None:
        return None
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return None


def source_grid_problem(volume: CTVolume, headers: Sequence[Dataset]) -> str | None:
    """Explain why the source images do not match the volume's grid, or ``None`` if they do.

    Args:
        volume: The analysed CT.
        headers: Headers of ``volume.source_files`` in the same order.

    Returns:
        ``None`` when slice ``k`` of the volume is exactly ``headers[k]``; else a reason.
    """
    geom = volume.geometry
    nz, ny, nx = geom.shape_zyx
    sz, sy, sx = geom.spacing_zyx
    if len(headers) != nz:
        return (
            f"the volume has {nz} slices but {len(headers)} source files are listed "
            "(the loader resampled or merged the series)"
        )
    direction = np.asarray(geom.direction)
    expected_iop = np.concatenate([direction[:, 0], direction[:, 1]])
    tol_pos = max(0.01, 0.02 * min(sz, sy, sx))
    for k, ds in enumerate(headers):
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            return "the source is a multi-frame image; only single-frame series are supported"
        if ds.get("Rows") != ny or ds.get("Columns") != nx:
            return (
                f"source slice {k} is {ds.get('Rows')}x{ds.get('Columns')} pixels, the volume "
                f"{ny}x{nx}"
            )
        spacing = _floats(ds, "PixelSpacing")
        if spacing is None or not np.allclose(spacing, (sy, sx), atol=1e-3):
            return f"source slice {k} has PixelSpacing {spacing}, the volume ({sy}, {sx})"
        iop = _floats(ds, "ImageOrientationPatient")
        if iop is None or not np.allclose(iop, expected_iop, atol=1e-3):
            return f"source slice {k} has another orientation than the volume"
        ipp = _floats(ds, "ImagePositionPatient")
        expected = geom.index_to_world((k, 0, 0))
        if ipp is None or not np.allclose(ipp, expected, atol=tol_pos):
            return (
                f"source slice {k} lies at {ipp}, the volume's slice {k} at "
                f"{[round(float(v), 3) for v in expected]} (resampled grid)"
            )
        if volume.series_uid and str(ds.get("SeriesInstanceUID", "")) != volume.series_uid:
            return f"source slice {k} belongs to another series than the volume"
    return None


def content_uid(result: CaseResult, kind: str, document: dict[str, Any]) -> str:
    """A UID derived from the case's findings, so identical content gets an identical UID.

    Args:
        result: The case.
        kind: What the UID is for (``"seg-series"``, ``"sr-instance"`` ...).
        document: The findings document (``timings_s`` is ignored).

    Returns:
        A UID under pydicom's root, stable across reruns with the same findings.
    """
    stable = {k: v for k, v in document.items() if k != "timings_s"}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode("utf-8")).hexdigest()
    return str(generate_uid(entropy_srcs=[str(result.series_uid), kind, digest]))


__all__ = [
    "CODE_DETECTION_SCORE",
    "CODE_LUNG_RADS",
    "CODE_NODULE_TYPE",
    "CODE_SOLID_COMPONENT",
    "DEVICE_UID",
    "MANUFACTURER",
    "NODULE_TYPE_CODES",
    "PRIVATE_SCHEME",
    "SEG_SERIES_NUMBER",
    "SR_SERIES_NUMBER",
    "content_uid",
    "lung_rads_code",
    "read_source_headers",
    "source_grid_problem",
    "source_reference_problem",
]
