"""Orientation independence: one phantom stored in many orientations gives one result.

The same anatomy (identical in world space) is written as NIfTI / MetaImage with its voxel
axes stored in other orders and directions. The loaders bring each onto the canonical
axial LPS grid, so the findings must match the LPS file's, and the written label maps must
lie on each file's own grid (overlaying it voxel for voxel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray

from medsnowball.core import CaseResult, CTVolume, ImageGeometry
from medsnowball.io import load_ct, write_dicom_series
from medsnowball.pipeline import Pipeline
from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

#: Stored orientations (SimpleITK / DICOM letters: where index axes i, j, k point) and
#: file suffixes. PRS / ALS swap the in-plane axes (a 90-degree in-plane rotation);
#: PIR and ASL are sagittal / coronal stacks; LAS is a left-handed grid.
ORIENTATIONS = [
    ("RAS", ".nii.gz"),
    ("PIR", ".nii.gz"),
    ("LAS", ".nii.gz"),
    ("ASL", ".mha"),
    ("PRS", ".nii.gz"),
    ("ALS", ".mha"),
]


@dataclass
class Run:
    """One pipeline run on a stored file."""

    path: Path
    out: Path
    result: CaseResult


def _write(volume_image: sitk.Image, code: str, path: Path) -> Path:
    stored = sitk.DICOMOrient(volume_image, code)
    assert (
        sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(stored.GetDirection())
        == code
    )
    sitk.WriteImage(stored, str(path))
    return path


def _run(path: Path, out: Path, formats: str = "json,nifti") -> Run:
    pipe = Pipeline.from_yaml("lung_nodule_classical")
    result = pipe.run(path, out_dir=out, formats=formats, device="cpu", case_id="case")
    return Run(path, out, result)


@pytest.fixture(scope="module")
def phantom_image(tmp_path_factory: pytest.TempPathFactory) -> sitk.Image:
    """A small chest phantom with two nodules, as an LPS SimpleITK image."""
    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=(48, 76, 84),  # in-plane axes of different lengths and spacings
            spacing_zyx=(2.5, 1.75, 1.5),  # float32-exact, like the origin it gets
            seed=35,
            dtype="int16",  # DICOM stores integers: the same values in every format
            nodules=(
                NoduleSpec(10.0, "solid", "parenchymal"),
                NoduleSpec(9.0, "solid", "parenchymal", side="left"),
            ),
        )
    )
    vol = ph.volume
    image = sitk.GetImageFromArray(np.asarray(vol.array))
    image.SetSpacing(vol.geometry.spacing_xyz)
    image.SetOrigin(vol.origin_lps)
    image.SetDirection(tuple(np.eye(3).ravel()))
    return image


@pytest.fixture(scope="module")
def reference(phantom_image: sitk.Image, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The pipeline on the phantom stored LPS (the canonical grid itself)."""
    root = tmp_path_factory.mktemp("orient_lps")
    run = _run(_write(phantom_image, "LPS", root / "lps.nii.gz"), root / "out")
    assert len(run.result.nodules) == 2, run.result.nodules
    return run


def _lungs(run: Run) -> sitk.Image:
    return sitk.ReadImage(str(run.out / "lungs.nii.gz"))


def _geometry(image: sitk.Image) -> tuple[NDArray[np.float64], ...]:
    return (
        np.asarray(image.GetSize(), dtype=np.float64),
        np.asarray(image.GetSpacing()),
        np.asarray(image.GetOrigin()),
        np.asarray(image.GetDirection()),
    )


def _check_same_findings(run: Run, reference: Run) -> None:
    """Same nodules (centres within 1 mm, volumes within 3 %) and lung volumes (2 %)."""
    ref_nodules = reference.result.nodules
    assert len(run.result.nodules) == len(ref_nodules)
    for ref in ref_nodules:
        best = min(run.result.nodules, key=lambda n: math.dist(n.center_lps, ref.center_lps))
        assert math.dist(best.center_lps, ref.center_lps) <= 1.0
        assert abs(best.volume_mm3 - ref.volume_mm3) <= 0.03 * ref.volume_mm3
    assert set(run.result.lungs_ml) == set(reference.result.lungs_ml)
    for side, ml in reference.result.lungs_ml.items():
        assert run.result.lungs_ml[side] == pytest.approx(ml, rel=0.02)


@pytest.mark.parametrize(("code", "suffix"), ORIENTATIONS, ids=[c for c, _ in ORIENTATIONS])
def test_same_result_in_every_stored_orientation(
    code: str,
    suffix: str,
    phantom_image: sitk.Image,
    reference: Run,
    tmp_path: Path,
) -> None:
    path = _write(phantom_image, code, tmp_path / f"case_{code.lower()}{suffix}")
    loaded = load_ct(path)
    assert [f.code for f in loaded.quality] == ["input_reoriented"]
    assert code in loaded.quality[0].message
    run = _run(path, tmp_path / "out")

    _check_same_findings(run, reference)

    # lungs.nii.gz lies on the file's own grid and equals the LPS result stored that way
    stored_ct = sitk.ReadImage(str(path))
    lungs = _lungs(run)
    for got, want in zip(_geometry(lungs), _geometry(stored_ct), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    expected = sitk.GetArrayFromImage(sitk.DICOMOrient(_lungs(reference), code))
    got_arr = sitk.GetArrayFromImage(lungs)
    assert got_arr.shape == sitk.GetArrayFromImage(stored_ct).shape
    assert expected.any()
    np.testing.assert_array_equal(got_arr, expected)
    # and the nodule labels overlay the nodules in the stored CT
    nodules = sitk.GetArrayFromImage(sitk.ReadImage(str(run.out / "nodules.nii.gz")))
    ct = sitk.GetArrayFromImage(stored_ct)
    assert nodules.shape == ct.shape
    assert float(np.median(ct[nodules > 0])) > -300.0  # solid nodule tissue, not lung


def test_feet_first_dicom_series(phantom_image: sitk.Image, reference: Run, tmp_path: Path) -> None:
    """A DICOM series stored feet first (x and z flipped): same findings, SEG/SR written."""
    stored = sitk.DICOMOrient(phantom_image, "RPI")
    array = sitk.GetArrayFromImage(stored)
    geometry = ImageGeometry(
        array.shape,
        tuple(reversed(stored.GetSpacing())),
        stored.GetOrigin(),
        np.reshape(stored.GetDirection(), (3, 3)),
    )
    write_dicom_series(CTVolume(array, geometry), tmp_path / "dicom")
    assert [f.code for f in load_ct(tmp_path / "dicom").quality] == ["input_reoriented"]
    run = _run(tmp_path / "dicom", tmp_path / "out", formats="json,nifti,seg,sr")
    _check_same_findings(run, reference)
    lungs = _lungs(run)
    np.testing.assert_allclose(lungs.GetOrigin(), geometry.origin_lps, atol=1e-4)
    np.testing.assert_allclose(
        np.reshape(lungs.GetDirection(), (3, 3)), geometry.direction, atol=1e-6
    )
    expected = sitk.GetArrayFromImage(sitk.DICOMOrient(_lungs(reference), "RPI"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lungs), expected)
    # SEG and SR reference the source slices: written on the series' own grid
    assert (run.out / "seg.dcm").is_file()
    assert (run.out / "sr.dcm").is_file()
