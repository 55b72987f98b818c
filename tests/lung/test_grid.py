"""Working grids: exact block geometry, block means and smooth upsampling; morphology."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import ImageGeometry
from medsnowball.lung.grid import WorkingGrid, block_factors
from medsnowball.lung.morphology import closing_edt, fill_holes_per_slice


def test_block_factors():
    assert block_factors((0.625, 0.7, 0.7), (2.0, 1.5, 1.5)) == (3, 2, 2)
    assert block_factors((2.5, 0.9, 0.9), (2.0, 1.5, 1.5)) == (1, 2, 2)
    assert block_factors((1.0, 0.6, 0.6), (2.0, 1.5, 1.5), (1, 10, 10)) == (1, 2, 2)


def test_working_voxel_centres_are_block_centres():
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    src = ImageGeometry((7, 9, 10), (1.0, 0.5, 0.7), (10.0, -3.0, 5.0), direction)
    grid = WorkingGrid.create(src, (2.0, 1.5, 1.5))
    assert grid.factors_zyx == (2, 3, 2)
    assert grid.geometry.shape_zyx == (4, 3, 5)
    np.testing.assert_allclose(grid.geometry.spacing_zyx, (2.0, 1.5, 1.4))
    # Working voxel (1, 2, 3) is the mean position of source voxels z 2-3, y 6-8, x 6-7.
    block = np.stack(np.meshgrid([2, 3], [6, 7, 8], [6, 7], indexing="ij"), -1).reshape(-1, 3)
    want = src.index_to_world(block).mean(axis=0)
    np.testing.assert_allclose(grid.geometry.index_to_world([1, 2, 3]), want, atol=1e-9)


def test_downsample_is_block_mean_with_clip():
    src = ImageGeometry((4, 4, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    grid = WorkingGrid.create(src, (2.0, 2.0, 2.0))
    a = np.arange(96, dtype=np.float32).reshape(4, 4, 6)
    out = grid.downsample(a)
    assert out.shape == (2, 2, 3)
    assert out[1, 0, 2] == pytest.approx(a[2:4, 0:2, 4:6].mean())
    clipped = grid.downsample(a - 100.0, clip=(-50.0, 1000.0))
    assert clipped[0, 0, 0] == pytest.approx(-50.0)


def test_downsample_partial_edge_blocks():
    src = ImageGeometry((3, 5, 5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    grid = WorkingGrid.create(src, (2.0, 2.0, 2.0))
    assert grid.geometry.shape_zyx == (2, 3, 3)
    a = np.ones((3, 5, 5), np.float32)
    np.testing.assert_allclose(grid.downsample(a), 1.0)


def test_upsample_labels_smooth_and_separated():
    src = ImageGeometry((4, 16, 16), (1.0, 0.5, 0.5), (0.0, 0.0, 0.0))
    grid = WorkingGrid.create(src, (2.0, 1.0, 1.0))
    work = np.zeros(grid.geometry.shape_zyx, np.uint8)
    work[:, 2:6, 1:4] = 1
    work[:, 2:6, 4:7] = 2  # touching lungs
    up = grid.upsample_labels(work)
    assert up.shape == src.shape_zyx
    # Mask size is preserved to within a boundary row of source voxels.
    assert np.count_nonzero(up == 1) == pytest.approx(np.count_nonzero(work == 1) * 8, rel=0.3)
    # Where the lungs touch, the border stays on the block border (x 7 | 8) on inner rows.
    for k in range(4):
        for j in range(6, 10):
            row = up[k, j]
            if (row == 1).any() and (row == 2).any():
                assert np.nonzero(row == 1)[0].max() == 7
                assert np.nonzero(row == 2)[0].min() == 8


def test_upsample_identity_and_nearest():
    src = ImageGeometry((3, 4, 4), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    grid = WorkingGrid.create(src, (2.0, 2.0, 2.0))
    assert grid.is_identity
    lab = np.zeros((3, 4, 4), np.uint8)
    lab[1, 1:3, 1:3] = 2
    np.testing.assert_array_equal(grid.upsample_labels(lab), lab)
    src2 = ImageGeometry((4, 4, 5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    g2 = WorkingGrid.create(src2, (2.0, 2.0, 2.0))
    field = np.arange(np.prod(g2.geometry.shape_zyx)).reshape(g2.geometry.shape_zyx)
    near = g2.upsample_nearest(field)
    assert near.shape == (4, 4, 5)
    assert near[3, 3, 4] == field[1, 1, 2]


def test_fill_holes_per_slice_keeps_border_regions():
    m = np.zeros((2, 7, 7), bool)
    m[0, 1:6, 1:6] = True
    m[0, 3, 3] = False  # a hole
    m[1, 0:7, 2] = True  # a wall, nothing enclosed
    out = fill_holes_per_slice(m)
    assert out[0, 3, 3]
    np.testing.assert_array_equal(out[1], m[1])


def test_closing_fills_a_dent_but_not_the_far_background():
    spacing = (1.0, 1.0, 1.0)
    m = np.zeros((1, 60, 60), bool)
    m[0, 10:50, 10:50] = True
    m[0, 10:16, 27:33] = False  # 6 mm wide dent in the edge
    closed = closing_edt(m, 8.0, spacing)
    assert closed[0, 12, 30]
    assert not closed[0, 5, 30]
    assert not closed[0, 55, 55]


def test_closing_never_grows_towards_the_array_border():
    m = np.zeros((12, 30, 30), bool)
    m[4:12, 5:25, 5:25] = True  # touches the last slice, not the first
    closed = closing_edt(m, 6.0, (1.0, 1.0, 1.0))
    assert not closed[:4].any()
    np.testing.assert_array_equal(closed[4:], m[4:])  # a box is already closed


def test_closing_of_a_thin_volume_acts_in_plane():
    m = np.zeros((2, 40, 40), bool)
    m[:, 5:35, 5:35] = True
    m[:, 5:10, 18:22] = False  # 4 mm wide notch from the edge
    closed = closing_edt(m, 6.0, (1.0, 1.0, 1.0))
    assert closed[:, 7, 20].all()
    assert not closed[:, 2, 20].any()
