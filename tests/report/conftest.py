"""Fixtures of the report tests (builders live in report_factories.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from report_factories import DEFAULT_SPHERES, SphereSpec, make_case

from medsnowball.core import CaseResult, CTVolume


@pytest.fixture
def phantom_case() -> tuple[CaseResult, CTVolume]:
    """The default phantom (two nodules) as a NIfTI-like input (no DICOM source files)."""
    return make_case()


@pytest.fixture
def make_dicom_case(
    tmp_path: Path,
) -> Callable[..., tuple[CaseResult, CTVolume]]:
    """Factory: write the phantom as a DICOM series, load it back with medsnowball.io.

    The returned CTVolume comes from ``medsnowball.io.load_ct`` (so ``source_files``,
    UIDs and patient fields are what the real loader produces); the CaseResult is the
    phantom's, carrying the loaded UIDs.
    """

    def factory(
        spheres: Sequence[SphereSpec] = DEFAULT_SPHERES,
        *,
        patient_name: str = "ANONYMOUS^",
        patient_id: str = "ANON",
        folder: str = "dicom_in",
        **kwargs: object,
    ) -> tuple[CaseResult, CTVolume]:
        from medsnowball.io import load_ct, write_dicom_series

        result, phantom = make_case(spheres, **kwargs)  # type: ignore[arg-type]
        src = tmp_path / folder
        write_dicom_series(
            phantom,
            src,
            patient_name=patient_name,
            patient_id=patient_id,
            file_names="shuffled",
        )
        volume = load_ct(src)
        result = dataclasses.replace(
            result,
            source=str(src),
            study_uid=volume.study_uid,
            series_uid=volume.series_uid,
            geometry=volume.geometry,
        )
        return result, volume

    return factory
