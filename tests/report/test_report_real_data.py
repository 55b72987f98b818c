"""The writers on real scanner files from ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medsnowball.core import CaseResult, MissingCodecError, Nodule, NoduleType
from medsnowball.io import load_ct
from medsnowball.report import assess, validate_findings, write_case_outputs
from medsnowball.report.render import CaseView


def _crude_lungs(hu: np.ndarray) -> np.ndarray:
    """Air inside the body (not connected to the border), split left/right at mid-x."""
    air = hu < -500
    labels, _ = ndimage.label(air)
    edges = (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1])
    border = np.unique(np.concatenate([e.ravel() for e in edges]))
    inside = air & ~np.isin(labels, border)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    half = hu.shape[2] // 2
    lungs[:, :, :half][inside[:, :, :half]] = 1
    lungs[:, :, half:][inside[:, :, half:]] = 2
    return lungs


def test_stripped_chest_slices(shared_data: Path, tmp_path: Path) -> None:
    volume = load_ct(shared_data / "real" / "chest_2slices_stripped")
    lungs = _crude_lungs(np.asarray(volume.array))
    # the lungmask project's reference: about 64,752 right and 36,536 left lung pixels
    assert 0.6 < (lungs == 1).sum() / 64752 < 1.4
    center = volume.geometry.index_to_world((0, 300, 125))
    nodule = Nodule(1, tuple(center), 0.5, 8.0, 8.4, 7.6, 200.0, 7.3, NoduleType.SOLID, 8.0, -20.0)  # type: ignore[arg-type]
    assessment, nodules = assess([nodule])
    result = CaseResult(
        case_id="chest2",
        source=volume.source,
        study_uid=volume.study_uid,
        series_uid=volume.series_uid,
        geometry=volume.geometry,
        nodules=nodules,
        assessment=assessment,
        lung_labels=lungs,
        warnings=volume.warnings,
    )
    outputs = write_case_outputs(result, volume, tmp_path)
    assert {"json", "csv", "nifti", "html", "pdf"} <= set(outputs)
    # the stripped headers have no FrameOfReferenceUID: SEG and SR cannot reference them
    assert "FrameOfReferenceUID" in outputs.skipped["seg"]
    assert "FrameOfReferenceUID" in outputs.skipped["sr"]
    doc = json.loads(outputs["json"].read_text(encoding="utf-8"))
    validate_findings(doc)
    assert any("seg output skipped" in w for w in doc["warnings"])
    assert doc["nodules"][0]["lung_rads"] == "4A"
    # two slices: the overview is axial, not a two-row coronal strip
    assert CaseView(volume).overview_plane() == "axial"
    html = outputs["html"].read_text(encoding="utf-8")
    assert html.count("<img") == 2


def test_anonymised_series_without_uids(shared_data: Path, tmp_path: Path) -> None:
    try:
        volume = load_ct(shared_data / "real" / "abdomen_dicom_jpeg2000")
    except MissingCodecError:
        pytest.skip("no JPEG 2000 decoder installed")
    assert len(volume.source_files) == volume.shape[0] == 20
    result = CaseResult(
        case_id="abdomen",
        source=volume.source,
        series_uid=volume.series_uid,
        geometry=volume.geometry,
        nodule_labels=np.zeros(volume.shape, dtype=np.uint16),
    )
    outputs = write_case_outputs(result, volume, tmp_path, formats=("seg", "sr", "html"))
    assert "SOPInstanceUID" in outputs.skipped["seg"]
    assert "html" in outputs
    validate_findings(json.loads(outputs["json"].read_text(encoding="utf-8")))
