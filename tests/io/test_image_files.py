"""NIfTI / MetaImage / NRRD loading: round trips, RAS->LPS, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medsnowball.core import CorruptFileError, ImageTooLargeError, InconsistentSeriesError
from medsnowball.io import ObliqueImageError, find_cases, load_case, load_ct, write_image


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"])
def test_round_trip(tmp_path, make_volume, rot, suffix):
    vol = make_volume(direction=rot("z", 25.0) @ rot("x", 10.0))
    path = write_image(vol, tmp_path / f"case-01{suffix}")
    loaded = load_ct(path, canonical=False)
    assert loaded.geometry == vol.geometry
    np.testing.assert_array_equal(loaded.array, vol.array)
    assert loaded.array.dtype == np.int16
    assert loaded.series_uid == "case-01"
    assert loaded.study_uid is None
    case = find_cases(tmp_path).cases[0]
    assert (
        case.kind
        == {
            ".nii": "nifti",
            ".nii.gz": "nifti",
            ".mha": "metaimage",
            ".mhd": "metaimage",
            ".nrrd": "nrrd",
        }[suffix]
    )
    np.testing.assert_array_equal(load_case(case, canonical=False).array, vol.array)
    # Oblique (rotated 25 deg about z, 10 about x): resampled onto an axis-aligned grid.
    canon = load_case(case)
    np.testing.assert_allclose(canon.direction, np.eye(3), atol=1e-9)
    assert canon.stored_geometry == vol.geometry
    assert [f.code for f in canon.quality] == ["input_resampled_oblique"]
    assert "deg" in canon.quality[0].message


def test_steeply_oblique_image_rejected(tmp_path, make_volume, rot):
    vol = make_volume(direction=rot("z", 40.0))
    path = write_image(vol, tmp_path / "steep.nii.gz")
    with pytest.raises(ObliqueImageError, match=r"steep\.nii\.gz.*40\.0 degrees.*30 degrees"):
        load_ct(path)
    assert load_ct(path, canonical=False).geometry == vol.geometry


def test_nifti_ras_affine_becomes_lps(tmp_path):
    """A NIfTI written by nibabel (RAS affine) must land at the right LPS positions."""
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7) - 100  # (i, j, k)
    affine = np.array(
        [[-0.8, 0.0, 0.0, 30.0], [0.0, 0.0, 2.5, -40.0], [0.0, -0.7, 0.0, 12.0], [0, 0, 0, 1]]
    )
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ras.nii.gz")
    vol = load_ct(tmp_path / "ras.nii.gz", canonical=False)
    assert vol.shape == (7, 6, 5)  # (k, j, i)
    rng = np.random.default_rng(0)
    for _ in range(10):
        ijk = rng.integers(0, [5, 6, 7])
        ras = affine @ np.array([*ijk, 1.0])
        lps = np.array([-ras[0], -ras[1], ras[2]])
        np.testing.assert_allclose(vol.index_to_world(ijk[::-1]), lps, atol=1e-4)
        assert vol.array[ijk[2], ijk[1], ijk[0]] == data[tuple(ijk)]


def test_float_and_int32_types(tmp_path, make_volume):
    vol = make_volume(shape=(3, 8, 8))
    as_float = vol.array.astype(np.float64) + 0.25
    as_float[0, 0, 0] = -3000.0
    write_image(as_float, tmp_path / "f.nii.gz", vol.geometry)
    f = load_ct(tmp_path / "f.nii.gz")
    assert f.array.dtype == np.float32
    assert f.array[0, 0, 0] == -1024
    np.testing.assert_allclose(f.array[1:], as_float[1:], rtol=1e-6)
    write_image(vol.array.astype(np.int32) - 2000, tmp_path / "i.mha", vol.geometry)
    i = load_ct(tmp_path / "i.mha")
    assert i.array.dtype == np.int16
    np.testing.assert_array_equal(i.array, np.maximum(vol.array.astype(np.int32) - 2000, -1024))


def test_absurd_nifti_header(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.int16)
    path = tmp_path / "huge.nii"
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(ImageTooLargeError, match=r"huge\.nii"):
        load_ct(path)


def test_truncated_and_empty_images(tmp_path, make_volume):
    vol = make_volume(shape=(8, 32, 32))
    path = write_image(vol, tmp_path / "t.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.nii"):
        load_ct(tmp_path / "cut.nii")
    gz = path.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(gz[: len(gz) - 100])
    with pytest.raises(CorruptFileError, match=r"cut.nii.gz.*incomplete"):
        load_ct(tmp_path / "cut.nii.gz")
    (tmp_path / "cut.mha").write_bytes(b"")
    mha = write_image(vol, tmp_path / "m.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(mha[: len(mha) - 500])
    with pytest.raises(CorruptFileError, match=r"cut\.mha"):
        load_ct(tmp_path / "cut.mha")
    (tmp_path / "zero.nii.gz").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="0 bytes"):
        load_ct(tmp_path / "zero.nii.gz")
    (tmp_path / "junk.mha").write_text("not an image")
    with pytest.raises(CorruptFileError, match=r"junk\.mha"):
        load_ct(tmp_path / "junk.mha")
    rows = {r.description: r for r in find_cases(tmp_path).rows}
    assert rows["zero.nii.gz"].code == "unreadable"
    assert not rows["zero.nii.gz"].selected
    assert rows["t.nii.gz"].selected


def test_non_3d_image_rejected(tmp_path):
    data = np.zeros((4, 4, 4, 3), np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "4d.nii.gz")
    with pytest.raises(InconsistentSeriesError, match="3-D"):
        load_ct(tmp_path / "4d.nii.gz")


def test_single_volume_4d_nifti_is_squeezed(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6, 1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "one.nii.gz")
    vol = load_ct(tmp_path / "one.nii.gz", canonical=False)
    assert vol.shape == (6, 5, 4)
    assert vol.array[5, 4, 3] == data[3, 4, 5, 0]
    # Identity affine = RAS: the canonical grid flips x and y.
    canon = load_ct(tmp_path / "one.nii.gz")
    assert canon.array[5, 0, 0] == data[3, 4, 5, 0]


def test_label_maps_are_not_cases(tmp_path: Path) -> None:
    """Unsigned label maps (our own mask outputs) are skipped with a reason, CT is kept."""
    import numpy as np

    from medsnowball.core import ImageGeometry
    from medsnowball.io import find_cases, write_image

    geom = ImageGeometry((8, 16, 16), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    ct = np.full((8, 16, 16), -1000, np.int16)
    write_image(ct, tmp_path / "scan.nii.gz", geom)
    write_image(np.ones((8, 16, 16), np.uint8), tmp_path / "lungs.nii.gz", geom)
    write_image(np.ones((8, 16, 16), np.uint16), tmp_path / "nodules.nii.gz", geom)
    cases = find_cases([tmp_path], keep_names=True)
    assert [c.case_id for c in cases.cases] == ["scan"]
    skipped = {r.description: r.code for r in cases.rows if not r.selected}
    assert skipped == {"lungs.nii.gz": "label_map", "nodules.nii.gz": "label_map"}
