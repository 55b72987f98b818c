"""Real scanner files in ../shared/data/real (skipped when absent)."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from medsnowball.io import describe, find_cases, load_ct
from medsnowball.io.selection import image_case_id


def test_jpeg2000_series_plausible_hu(shared_data, sitk_series):
    folder = shared_data / "real" / "abdomen_dicom_jpeg2000"
    vol = load_ct(folder)
    assert vol.shape == (20, 512, 512)
    np.testing.assert_allclose(vol.spacing_zyx, (2.0, 0.9765625, 0.9765625))
    a = vol.array
    corners = np.concatenate([a[:, :40, :40].ravel(), a[:, :40, -40:].ravel()])
    assert np.median(corners) < -950  # air outside the body
    centre = a[:, 200:320, 200:320]
    soft = np.mean((centre > -100) & (centre < 150))
    assert soft > 0.5  # mostly soft tissue in the abdomen centre
    assert np.percentile(a, 99.9) > 300  # bone
    assert a.min() >= -1024
    assert vol.acquisition.manufacturer == "SIEMENS"
    assert vol.acquisition.slice_thickness_mm == 3.0
    arr, image = sitk_series(folder)
    np.testing.assert_array_equal(a, np.maximum(arr, -1024))
    np.testing.assert_allclose(vol.origin_lps, image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(vol.direction, np.reshape(image.GetDirection(), (3, 3)))


def test_stripped_chest_slices_accepted_with_warning(shared_data, caplog):
    folder = shared_data / "real" / "chest_2slices_stripped"
    with caplog.at_level(logging.WARNING, logger="medsnowball.io"):
        vol = load_ct(folder)
    assert vol.shape == (2, 512, 512)
    assert vol.spacing_zyx == (1.0, 0.625, 0.625)
    assert any("no Modality tag" in w for w in vol.warnings)
    assert "no Modality tag" in caplog.text
    assert vol.array.min() == -1024  # the -2048 padding became air
    assert vol.array.max() == 1502
    lung = (vol.array > -950) & (vol.array < -500)
    assert 60_000 < lung.sum() < 160_000  # ~101k lung pixels over the two slices
    row = next(r for r in describe(folder) if r.selected)
    assert row.modality == "?"


def test_nifti_lung_bases_in_lps(shared_data):
    path = shared_data / "real" / "abdomen_lung_bases.nii.gz"
    vol = load_ct(path, canonical=False)
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    assert vol.shape == data.shape[::-1]
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    rng = np.random.default_rng(0)
    for ijk in rng.integers(0, data.shape, size=(20, 3)):
        np.testing.assert_allclose(
            vol.index_to_world(ijk[::-1]), (lps_affine @ [*ijk, 1])[:3], atol=1e-3
        )
        assert vol.array[ijk[2], ijk[1], ijk[0]] == max(int(data[tuple(ijk)]), -1024)
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(vol.origin_lps, image.GetOrigin(), atol=1e-4)
    case = find_cases(path).cases[0]
    assert case.kind == "nifti"
    assert case.case_id == image_case_id(path)
    assert find_cases(path, keep_names=True).cases[0].case_id == "abdomen_lung_bases"

    # the lung bases are in the top (superior, +z) slices: air inside the body there
    def air_in_body(k: int) -> int:
        body = ndimage.binary_fill_holes(vol.array[k] > -300)
        return int(np.sum((vol.array[k] < -500) & body))

    top = sum(air_in_body(k) for k in range(vol.shape[0] - 10, vol.shape[0]))
    bottom = sum(air_in_body(k) for k in range(10))
    assert vol.index_to_world([vol.shape[0] - 1, 0, 0])[2] > vol.origin_lps[2]
    assert top > 5 * bottom
