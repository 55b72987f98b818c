"""Reading and writing CT images: discovery, series selection, loading, writers.

Public API::

    discover(paths) -> Discovery             # headers only: DICOM series + image files
    find_cases(paths) -> CaseList            # selection rules: one case per study / file
    describe(paths) -> list[SeriesRow]       # the table behind `medsnowball info`
    load_case(case) -> CTVolume
    load_ct(path) -> CTVolume                # file or folder (best series)
    write_dicom_series(volume, folder) / write_image(volume_or_array, path, geometry)
    to_canonical(volume) -> CTVolume         # canonical axial LPS grid (every loader uses it)
    to_stored_grid(labels, geometry, stored) # label maps back onto the file's own grid

See docs/io.md for the selection, irregular-series, gantry-tilt and missing-Modality rules.
"""

from __future__ import annotations

from medsnowball.io.cases import (
    CaseList,
    SeriesRow,
    describe,
    find_cases,
    format_table,
    load_case,
    load_ct,
)
from medsnowball.io.dicom_loader import DEFAULT_MAX_BYTES, load_dicom_series
from medsnowball.io.discovery import DicomSeries, Discovery, discover
from medsnowball.io.image_files import load_image
from medsnowball.io.orient import ObliqueImageError, orientation_code, to_canonical, to_stored_grid
from medsnowball.io.selection import CaseInput
from medsnowball.io.writers import IMAGE_SUFFIXES, image_suffix, write_dicom_series, write_image

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IMAGE_SUFFIXES",
    "CaseInput",
    "CaseList",
    "DicomSeries",
    "Discovery",
    "ObliqueImageError",
    "SeriesRow",
    "describe",
    "discover",
    "find_cases",
    "format_table",
    "image_suffix",
    "load_case",
    "load_ct",
    "load_dicom_series",
    "load_image",
    "orientation_code",
    "to_canonical",
    "to_stored_grid",
    "write_dicom_series",
    "write_image",
]
