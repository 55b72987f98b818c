"""Canonical axial grid: exact axis permutations / flips, oblique resampling, inverse mapping."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.io import (
    ObliqueImageError,
    load_ct,
    orientation_code,
    to_canonical,
    to_stored_grid,
    write_image,
)
from medsnowball.io.orient import OUTSIDE_HU

#: All 48 signed permutation matrices (columns = index axes i, j, k in LPS).
SIGNED_PERMUTATIONS = [
    np.eye(3)[:, list(perm)] * np.array(signs)
    for perm in itertools.permutations(range(3))
    for signs in itertools.product((1.0, -1.0), repeat=3)
]


def _volume(direction: NDArray[np.float64], seed: int, **kw: object) -> CTVolume:
    rng = np.random.default_rng(seed)
    shape = (5, 6, 7)
    geom = ImageGeometry(
        shape,
        tuple(rng.uniform(0.5, 3.0, 3)),  # type: ignore[arg-type]
        tuple(rng.uniform(-200.0, 200.0, 3)),  # type: ignore[arg-type]
        direction,
    )
    array = rng.integers(-1024, 2000, shape).astype(np.int16)
    return CTVolume(array, geom, source=str(kw.get("source", "/data/case.nii.gz")))


def _world_table(vol: CTVolume) -> dict[tuple[float, ...], int]:
    """World position (rounded to 1e-3 mm) -> value, for every voxel."""
    idx = np.indices(vol.shape).reshape(3, -1).T
    world = np.round(vol.index_to_world(idx), 3)
    return {tuple(w): int(vol.array[tuple(i)]) for w, i in zip(world, idx, strict=True)}


@pytest.mark.parametrize("n", range(48))
def test_every_signed_permutation_is_exact(n: int) -> None:
    direction = SIGNED_PERMUTATIONS[n]
    vol = _volume(direction, seed=n)
    canon = to_canonical(vol)
    code = orientation_code(direction)
    assert code == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        tuple(direction.ravel())
    )
    # canonical grid: identity direction, the same voxels at the same world positions
    np.testing.assert_array_equal(canon.direction, np.eye(3))
    assert sorted(canon.shape) == [5, 6, 7]
    assert _world_table(canon) == _world_table(vol)
    if code == "LPS":
        assert canon is vol
        assert canon.quality == ()
        assert canon.stored_geometry is None
        return
    assert canon.stored_geometry == vol.geometry
    assert [(f.code, f.severity) for f in canon.quality] == [("input_reoriented", "info")]
    assert code in canon.quality[0].message
    assert ("not axial" in canon.quality[0].message) == (code[2] not in "SI")
    # the inverse mapping gives back the stored array exactly
    back = to_stored_grid(canon.array, canon.geometry, vol.geometry)
    assert back.dtype == vol.array.dtype
    np.testing.assert_array_equal(back, vol.array)
    # and a second canonicalisation changes nothing
    assert to_canonical(canon) is canon


def test_sub_tolerance_obliquity_is_kept_exactly() -> None:
    t = np.deg2rad(0.5)
    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    vol = _volume(tilt @ np.diag([-1.0, -1.0, 1.0]), seed=3)  # RAS, 0.5 deg about x
    canon = to_canonical(vol)
    assert [f.code for f in canon.quality] == ["input_reoriented"]
    np.testing.assert_allclose(canon.direction, tilt, atol=1e-12)  # not snapped to identity
    assert _world_table(canon) == _world_table(vol)
    np.testing.assert_array_equal(
        to_stored_grid(canon.array, canon.geometry, vol.geometry), vol.array
    )


def _rot_z(degrees: float) -> NDArray[np.float64]:
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def test_oblique_10_degrees_resampled_linearly() -> None:
    pir = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float)  # i->P, j->I, k->R
    geom = ImageGeometry((20, 24, 22), (1.5, 1.2, 1.0), (12.0, -30.0, 40.0), _rot_z(10.0) @ pir)
    idx = np.indices(geom.shape_zyx).reshape(3, -1).T
    world = geom.index_to_world(idx)

    def field(w: NDArray[np.float64]) -> NDArray[np.float64]:
        return 2.0 * w[..., 0] - 3.0 * w[..., 1] + 0.5 * w[..., 2]

    # a linear field: linear interpolation reproduces it exactly inside the stored grid
    array = field(world).reshape(geom.shape_zyx).astype(np.float32)
    vol = CTVolume(array, geom, source="/data/tilted.mha")
    canon = to_canonical(vol)
    assert [(f.code, f.severity) for f in canon.quality] == [("input_resampled_oblique", "info")]
    assert "10.0 degrees" in canon.quality[0].message
    np.testing.assert_array_equal(canon.direction, np.eye(3))
    assert canon.stored_geometry == geom
    assert canon.array.dtype == np.float32
    # grid: spacing of the nearest stored axes, covering the stored voxel centres
    # x <- k (1.5 mm), y <- i (1.0 mm), z <- j (1.2 mm)
    assert canon.spacing_zyx == pytest.approx((1.2, 1.0, 1.5))
    cidx = np.indices(canon.shape).reshape(3, -1).T
    cworld = canon.index_to_world(cidx)
    frac = geom.world_to_index(cworld)
    inside = np.all((frac >= 0) & (frac <= np.asarray(geom.shape_zyx) - 1), axis=1)
    values = canon.array.reshape(-1)
    assert inside.mean() > 0.6
    np.testing.assert_allclose(values[inside], field(cworld[inside]), atol=0.05)
    far = np.any(np.abs(frac - np.clip(frac, 0, np.asarray(geom.shape_zyx) - 1)) > 1, axis=1)
    assert far.any()
    assert np.all(values[far] == OUTSIDE_HU)
    # label maps go back onto the stored grid by nearest neighbour
    centre = world.mean(axis=0)
    ball = (np.linalg.norm(cworld - centre, axis=1) < 8.0).reshape(canon.shape).astype(np.uint8)
    back = to_stored_grid(ball, canon.geometry, geom)
    truth = (np.linalg.norm(world - centre, axis=1) < 8.0).reshape(geom.shape_zyx)
    assert back.shape == geom.shape_zyx
    assert back.dtype == np.uint8
    # nearest neighbour only errs within half a voxel diagonal of the sphere's surface
    wrong = (back.astype(bool) != truth).reshape(-1)
    assert np.all(np.abs(np.linalg.norm(world[wrong] - centre, axis=1) - 8.0) < 1.2)
    assert abs(int(back.sum()) - int(truth.sum())) < 0.1 * truth.sum()


def test_oblique_45_degrees_rejected() -> None:
    vol = _volume(_rot_z(45.0), seed=1, source="/data/steep_case.nii.gz")
    with pytest.raises(ObliqueImageError) as info:
        to_canonical(vol)
    message = str(info.value)
    assert "/data/steep_case.nii.gz" in message
    assert "45.0 degrees" in message
    assert "30 degrees" in message
    assert isinstance(info.value, ValueError)


def test_labels_on_wrong_grid_rejected() -> None:
    vol = _volume(np.diag([-1.0, -1.0, 1.0]), seed=2)
    canon = to_canonical(vol)
    with pytest.raises(ValueError, match="analysed grid"):
        to_stored_grid(np.zeros((2, 2, 2), np.uint8), canon.geometry, vol.geometry)


def test_load_ct_reorients_files(tmp_path) -> None:
    """A file stored PIR loads onto the canonical grid with the stored grid kept."""
    pir = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float)
    vol = _volume(pir, seed=5)
    path = write_image(vol, tmp_path / "pir.nii.gz")
    canon = load_ct(path)
    assert canon.stored_geometry == vol.geometry
    assert "PIR" in canon.quality[0].message
    assert "not axial" in canon.quality[0].message
    assert _world_table(canon) == _world_table(vol)
    raw = load_ct(path, canonical=False)
    assert raw.quality == ()
    assert raw.stored_geometry is None
    np.testing.assert_array_equal(raw.array, vol.array)


def test_oblique_label_map_file_resampled_by_nearest_neighbour(tmp_path) -> None:
    """Unsigned label maps (masks) keep their label values: no blending, 0 outside."""
    from medsnowball.io import load_image

    geom = ImageGeometry((12, 20, 24), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), _rot_z(12.0))
    labels = np.zeros(geom.shape_zyx, np.uint8)
    labels[3:9, 4:12, 5:14] = 1
    labels[3:9, 12:18, 5:14] = 3  # touching label 1: linear interpolation would give 2
    path = write_image(labels, tmp_path / "mask.nii.gz", geom)
    canon = load_image(path)
    assert [f.code for f in canon.quality] == ["input_resampled_oblique"]
    assert "nearest neighbour" in canon.quality[0].message
    assert set(np.unique(canon.array).tolist()) == {0, 1, 3}
    # voxel counts survive up to the resampling of the boundary
    for value in (1, 3):
        assert (
            abs(int((canon.array == value).sum()) - int((labels == value).sum()))
            < 0.15 * (labels == value).sum()
        )
