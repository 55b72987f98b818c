"""A corrupt input never ends as a clean negative (issue 13, item 1).

Four corrupt inputs (BitsAllocated 8 on 16-bit pixel data, RescaleSlope 1e20, an all-zero
NIfTI, an int8 NIfTI) go through a real batch with the classical pipeline: each ends
``failed`` with the reason or ``needs_review`` with ``hu_range_implausible`` and Lung-RADS 0.
An intact copy of the same chest is the control: no HU flag, Lung-RADS 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.core.errors import CorruptFileError
from medsnowball.io import find_cases, load_case, write_dicom_series
from medsnowball.pipeline import BatchSummary, run_batch
from medsnowball.pipeline.outputs import CaseOutcome
from medsnowball.pipeline.quality import CODE_HU_RANGE, hu_range_flags

SHAPE = (24, 64, 64)
SPACING = (5.0, 5.0, 5.0)


def _chest() -> CTVolume:
    """A crude chest: air outside, a soft-tissue body, two lungs at -850 HU."""
    z, y, x = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]].astype(np.float32)
    arr = np.full(SHAPE, -1000.0, np.float32)
    arr[((y - 32) / 28) ** 2 + ((x - 32) / 30) ** 2 < 1] = 40.0
    for cx in (20, 44):
        lung = (((y - 32) / 18) ** 2 + ((x - cx) / 9) ** 2 < 1) & (z > 1) & (z < SHAPE[0] - 2)
        arr[lung] = -850.0
    arr += np.random.default_rng(0).normal(0, 10, SHAPE).astype(np.float32)
    return CTVolume(arr, ImageGeometry(SHAPE, SPACING, (0.0, 0.0, 0.0)))


def _dicom(root: Path, name: str, **tags: object) -> Path:
    folder = root / name
    for f in write_dicom_series(_chest(), folder, series_description=name):
        ds = pydicom.dcmread(f)
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(f)
    return folder


def _nifti(root: Path, name: str, arr: np.ndarray) -> Path:
    path = root / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.diag([*SPACING, 1.0])), path)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[BatchSummary, dict[str, Path]]:
    root = tmp_path_factory.mktemp("corrupt")
    xyz = _chest().array.transpose(2, 1, 0)
    inputs = {
        "bits8": _dicom(root, "bits8", BitsAllocated=8, BitsStored=8, HighBit=7),
        "slope": _dicom(root, "slope", RescaleSlope=1e20),
        "good": _dicom(root, "good"),
        "zeros": _nifti(root, "zeros", np.zeros(xyz.shape, np.int16)),
        "int8": _nifti(root, "int8", np.clip(xyz / 10, -128, 127).astype(np.int8)),
    }
    summary = run_batch(
        list(inputs.values()),
        root / "out",
        pipeline="lung_nodule_classical",
        formats="json,csv",
    )
    return summary, inputs


def _outcome(summary: BatchSummary, source: Path) -> CaseOutcome:
    (outcome,) = [o for o in summary.outcomes if Path(o.source) == source]
    return outcome


def _lung_rads(summary: BatchSummary, outcome: CaseOutcome) -> str:
    findings = json.loads((summary.out_dir / outcome.case_id / "findings.json").read_text())
    return str(findings["assessment"]["lung_rads"])


def test_intact_chest_is_the_control(batch: tuple[BatchSummary, dict[str, Path]]) -> None:
    summary, inputs = batch
    good = _outcome(summary, inputs["good"])
    assert good.ok
    assert CODE_HU_RANGE not in good.flags
    assert good.lung_rads == _lung_rads(summary, good) == "1"


@pytest.mark.parametrize("name", ["slope", "zeros", "int8"])
def test_impossible_hu_range_needs_review_with_lung_rads_0(
    batch: tuple[BatchSummary, dict[str, Path]], name: str
) -> None:
    summary, inputs = batch
    outcome = _outcome(summary, inputs[name])
    assert outcome.status == "needs_review"
    assert CODE_HU_RANGE in outcome.flags
    assert outcome.lung_rads == _lung_rads(summary, outcome) == "0"
    findings = json.loads((summary.out_dir / outcome.case_id / "findings.json").read_text())
    codes = [f["code"] for f in findings["quality"]["flags"]]
    assert CODE_HU_RANGE in codes
    assert not any("Lung-RADS 1" in n for n in findings["assessment"].get("notes", []))


def test_bits_allocated_8_on_16_bit_data_fails_naming_the_file(
    batch: tuple[BatchSummary, dict[str, Path]],
) -> None:
    summary, inputs = batch
    outcome = _outcome(summary, inputs["bits8"])
    assert outcome.status == "failed"
    assert outcome.error.startswith("CorruptFileError in step 'load': ")
    assert str(inputs["bits8"]) in outcome.error
    assert "holds 8192 bytes, expected 4096" in outcome.error
    assert summary.exit_code == 1


def test_pixel_data_longer_than_the_header_says_is_an_error(tmp_path: Path) -> None:
    folder = _dicom(tmp_path, "rows", Rows=32)  # 64x64 pixels stored, header says 32x64
    (case,) = find_cases([folder]).cases
    with pytest.raises(CorruptFileError, match=r"holds 8192 bytes, expected 4096"):
        load_case(case)


def test_odd_length_padding_byte_is_accepted(tmp_path: Path) -> None:
    arr = _chest().array[:, :63, :63].copy()
    vol = CTVolume(arr, ImageGeometry((24, 63, 63), SPACING, (0, 0, 0)))
    files = write_dicom_series(vol, tmp_path / "odd")
    for f in files:  # 8-bit, 63x63 = 3969 bytes: stored padded to 3970
        ds = pydicom.dcmread(f)
        raw = np.clip(ds.pixel_array // 16, 0, 255).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = raw.tobytes() + b"\0"
        ds.save_as(f)
    (case,) = find_cases([tmp_path / "odd"]).cases
    assert load_case(case).shape == (24, 63, 63)


def _vol(arr: np.ndarray) -> CTVolume:
    return CTVolume(arr.astype(np.float32), ImageGeometry(arr.shape, (1, 1, 1), (0, 0, 0)))


def test_hu_range_flags_thresholds() -> None:
    base = np.full((4, 8, 8), 40.0, np.float32)
    base[:, :, :4] = -1000.0
    assert hu_range_flags(_vol(base)) == []
    no_air = base.copy()
    no_air[no_air < 0] = -899.0
    (flag,) = hu_range_flags(_vol(no_air))
    assert flag.code == CODE_HU_RANGE
    assert flag.severity == "review"
    assert "no voxel is below -900 HU" in flag.message
    metal = base.copy()
    metal.reshape(-1)[:2] = 3071.0  # 2 of 256 voxels: < 1 %
    assert hu_range_flags(_vol(metal)) == []
    metal.reshape(-1)[:3] = 3071.0  # 3 of 256: > 1 %
    assert "1% of the voxels are at or above 3000 HU" in hu_range_flags(_vol(metal))[0].message
    flat = np.full((4, 8, 8), -1000.0, np.float32)
    flat[0, 0, 0] = -990.0
    assert "almost constant" in hu_range_flags(_vol(flat))[0].message
    nan = base.copy()
    nan[0, 0, 0] = np.nan
    assert "non-finite" in hu_range_flags(_vol(nan))[0].message
