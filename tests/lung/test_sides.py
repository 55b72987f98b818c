"""Right/left from the mediastinal midline and world coordinates; split check and repair."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from medsnowball.core import CTVolume, ImageGeometry, LungSegmentation, Side
from medsnowball.lung import locate, segment_lungs
from medsnowball.lung import split as split_mod
from medsnowball.lung.segment import make_segmentation
from medsnowball.lung.split import CODE_SIDE_RATIO, CODE_SPLIT_REPAIRED, split_sides
from medsnowball.lung.zones import SIDE_CONTRADICTION_MM
from medsnowball.synth import Phantom, PhantomConfig, generate_phantom


def _codes(seg: LungSegmentation) -> set[str]:
    return {f.code for f in seg.quality}


def _world_x(seg: LungSegmentation, mask: np.ndarray) -> float:
    return float(seg.geometry.index_to_world(np.argwhere(mask).mean(axis=0))[0])


def _replace_by_tissue(phantom: Phantom, region: np.ndarray, seed: int = 0) -> CTVolume:
    """The phantom with ``region`` (grown by one voxel) turned into soft tissue (~40 HU)."""
    arr = np.array(phantom.volume.array, dtype=np.float32)
    grown = ndimage.binary_dilation(region)
    rng = np.random.default_rng(seed)
    arr[grown] = 40.0 + rng.normal(0.0, 15.0, int(grown.sum())).astype(np.float32)
    return phantom.volume.with_array(arr)


def _left_lung_part(truth: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Left-lung voxels outside its top ``keep_fraction`` of slices (by index)."""
    left = truth == 2
    ks = np.nonzero(left.any(axis=(1, 2)))[0]
    cut = ks[0] + round((1.0 - keep_fraction) * (ks[-1] - ks[0]))
    part = left.copy()
    part[cut:] = False
    return part


def _volume_ml(seg: LungSegmentation, mask: np.ndarray) -> float:
    return float(np.count_nonzero(mask) * seg.geometry.voxel_volume_mm3 / 1000.0)


def test_midline_lies_between_the_lungs(lung_phantom: Phantom, lung_seg: LungSegmentation):
    truth = lung_phantom.lung_labels
    geo = lung_seg.geometry
    x_right = geo.index_to_world(np.argwhere(truth == 1))[:, 0]
    x_left = geo.index_to_world(np.argwhere(truth == 2))[:, 0]
    gap_centre = (np.percentile(x_right, 99.5) + np.percentile(x_left, 0.5)) / 2.0
    assert lung_seg.midline_x_lps == pytest.approx(gap_centre, abs=6.0)


def test_unequal_lungs_keep_their_sides(lung_phantom: Phantom):
    truth = lung_phantom.lung_labels
    gone = _left_lung_part(truth, keep_fraction=0.55)
    seg = segment_lungs(_replace_by_tissue(lung_phantom, gone))
    left_left = (truth == 2) & ~ndimage.binary_dilation(gone)
    assert 0.25 < seg.left_ml / seg.right_ml < 0.7  # clearly unequal, still plausible
    assert seg.left_ml == pytest.approx(_volume_ml(seg, left_left), rel=0.15)
    assert seg.right_ml == pytest.approx(lung_phantom.truth.right_lung_ml, rel=0.08)
    assert np.mean(seg.labels[truth == 1] == 1) > 0.97
    assert np.mean(seg.labels[left_left] == 2) > 0.9
    assert seg.quality == ()


def test_very_small_lung_is_flagged_not_repaired(lung_phantom: Phantom):
    truth = lung_phantom.lung_labels
    gone = _left_lung_part(truth, keep_fraction=0.2)
    seg = segment_lungs(_replace_by_tissue(lung_phantom, gone))
    left_left = (truth == 2) & ~ndimage.binary_dilation(gone)
    assert seg.left_ml / seg.right_ml < 0.25
    assert np.mean(seg.labels[truth == 1] == 1) > 0.97
    assert np.mean(seg.labels[left_left] == 2) > 0.9
    assert _codes(seg) == {CODE_SIDE_RATIO}
    flag = next(f for f in seg.quality if f.code == CODE_SIDE_RATIO)
    assert flag.severity == "review"
    assert "left lung holds only" in flag.message


def test_one_lung_removed(lung_phantom: Phantom):
    truth = lung_phantom.lung_labels
    seg = segment_lungs(_replace_by_tissue(lung_phantom, truth == 2))
    assert seg.left_ml < 5.0  # no spurious split of the right lung into two
    assert seg.right_ml == pytest.approx(lung_phantom.truth.right_lung_ml, rel=0.08)
    assert np.mean(seg.labels[truth == 1] == 1) > 0.97
    assert _codes(seg) == {CODE_SIDE_RATIO}
    assert "only the right lung" in seg.quality[0].message
    # The single lung is on the patient's right of the (body-centroid) midline.
    assert seg.midline_x_lps is not None
    assert _world_x(seg, seg.labels == 1) < seg.midline_x_lps


@pytest.mark.parametrize("pixel_mm", [1.75, 2.0])
def test_coarse_pixels(pixel_mm: float):
    n = round(256 / pixel_mm)
    ph = generate_phantom(
        PhantomConfig(shape_zyx=(96, n, n), spacing_zyx=(2.5, pixel_mm, pixel_mm), seed=52)
    )
    seg = segment_lungs(ph.volume)
    assert seg.right_ml == pytest.approx(ph.truth.right_lung_ml, rel=0.10)
    assert seg.left_ml == pytest.approx(ph.truth.left_lung_ml, rel=0.10)
    for label in (1, 2):
        assert np.mean(seg.labels[ph.lung_labels == label] == label) > 0.97
    assert seg.quality == ()
    assert _world_x(seg, seg.labels == 1) < seg.midline_x_lps < _world_x(seg, seg.labels == 2)


def test_world_x_flipped_in_the_direction_matrix(lung_phantom: Phantom, lung_seg: LungSegmentation):
    vol = lung_phantom.volume
    geo = vol.geometry
    origin = geo.index_to_world([0, 0, geo.shape_zyx[2] - 1])
    geo2 = dataclasses.replace(geo, origin_lps=tuple(origin), direction=np.diag([-1.0, 1, 1]))
    seg = segment_lungs(CTVolume(np.ascontiguousarray(vol.array[:, :, ::-1]), geo2))
    # Same world midline, up to one histogram bin (1.6 mm here).
    assert seg.midline_x_lps == pytest.approx(lung_seg.midline_x_lps, abs=2.0)
    flipped_back = seg.labels[:, :, ::-1]
    for label in (1, 2):
        same = np.count_nonzero((flipped_back == label) & (lung_seg.labels == label))
        assert same / np.count_nonzero(lung_seg.labels == label) > 0.99
    # Image-left is the patient's right now: the right lung lies at large column indices.
    assert np.argwhere(seg.labels == 1)[:, 2].mean() > np.argwhere(seg.labels == 2)[:, 2].mean()
    for n in lung_phantom.truth.nodules:
        assert locate(seg, n.center_lps) == locate(lung_seg, n.center_lps)


# ------------------------------------------------------------- split check and repair


def _two_boxes_joined() -> tuple[np.ndarray, ImageGeometry]:
    """Two 'lungs' (x 4-17 right, 23-36 left) joined by a thin bridge (one component)."""
    geo = ImageGeometry((10, 30, 40), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    lungs = np.zeros(geo.shape_zyx, bool)
    lungs[1:9, 5:25, 4:17] = True
    lungs[1:9, 5:25, 23:36] = True
    lungs[4:6, 5:8, 17:23] = True  # the bridge
    return lungs, geo


def test_split_repaired_when_the_first_split_puts_everything_on_one_side(monkeypatch):
    lungs, geo = _two_boxes_joined()
    body = np.ones_like(lungs)

    def all_right(comp, offset, geometry, midline_x):  # a failing erosion split
        return np.where(comp, 1, 0).astype(np.uint8)

    monkeypatch.setattr(split_mod, "_split_component", all_right)
    result = split_sides(lungs, body, geo)
    assert result.two_lungs
    assert result.midline_x == pytest.approx(40.0, abs=4.0)  # gap between x = 34 and 46 mm
    assert [f.code for f in result.flags] == [CODE_SPLIT_REPAIRED]
    assert result.flags[0].severity == "info"
    assert (result.labels[:, :, 4:17][lungs[:, :, 4:17]] == 1).all()
    assert (result.labels[:, :, 23:36][lungs[:, :, 23:36]] == 2).all()


def test_split_repaired_when_sides_are_swapped(monkeypatch):
    lungs, geo = _two_boxes_joined()

    def swapped(comp, offset, geometry, midline_x):
        side = np.where(np.arange(comp.shape[2]) + offset[2] < 20, 2, 1).astype(np.uint8)
        return np.where(comp, side[None, None, :], 0).astype(np.uint8)

    monkeypatch.setattr(split_mod, "_split_component", swapped)
    result = split_sides(lungs, np.ones_like(lungs), geo)
    assert [f.code for f in result.flags] == [CODE_SPLIT_REPAIRED]
    assert "wrong side" in result.flags[0].message
    assert (result.labels[:, :, 4:17][lungs[:, :, 4:17]] == 1).all()


def test_unseparable_component_without_valley_stays_one_lung():
    geo = ImageGeometry((10, 30, 40), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    lungs = np.zeros(geo.shape_zyx, bool)
    lungs[1:9, 5:25, 4:24] = True  # one lung crossing the body's centre (x 8-46 mm)
    body = np.zeros_like(lungs)
    body[:, :, 0:40] = True  # centre x = 39 mm
    result = split_sides(lungs, body, geo)
    assert not result.two_lungs
    assert set(np.unique(result.labels[lungs])) == {1}
    assert [f.code for f in result.flags] == [CODE_SIDE_RATIO]


# ------------------------------------------------------------------ nodule sides


def _seg_with_midline(midline: float | None) -> LungSegmentation:
    geo = ImageGeometry((5, 20, 60), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    labels = np.zeros(geo.shape_zyx, np.uint8)
    labels[:, 5:15, 2:25] = 1
    labels[:, 5:15, 35:58] = 2
    return make_segmentation(labels, geo, midline_x_lps=midline)


def test_point_outside_both_lungs_takes_the_world_side():
    seg = _seg_with_midline(40.0)  # the midline is left of the gap (x 25-34)
    # x = 30: nearest lung voxel is the right lung's, but the point lies left of the midline.
    assert locate(seg, (33.0, 10.0, 4.0))[0] is Side.RIGHT
    assert locate(_seg_with_midline(30.0), (33.0, 10.0, 4.0))[0] is Side.LEFT
    # Without a midline the nearest lung voxel decides (33 is nearer the left lung at 35).
    assert locate(_seg_with_midline(None), (33.0, 10.0, 4.0))[0] is Side.LEFT
    assert locate(_seg_with_midline(None), (26.0, 10.0, 4.0))[0] is Side.RIGHT


def test_label_contradicting_the_world_side_far_from_the_midline_is_overruled():
    seg = _seg_with_midline(30.0)
    wrong = seg.labels.copy()
    wrong[:, :, 40:58][wrong[:, :, 40:58] == 2] = 1  # a split error: left lung labelled right
    bad = dataclasses.replace(seg, labels=wrong)
    x_far = 30.0 + SIDE_CONTRADICTION_MM + 5.0
    assert locate(bad, (x_far, 10.0, 4.0))[0] is Side.LEFT
    # Near the midline the lung label is kept (lungs may cross the midline a little).
    labels = seg.labels.copy()
    labels[:, 5:15, 25:35] = 1  # right lung reaching across the midline
    crossing = dataclasses.replace(seg, labels=labels)
    assert locate(crossing, (33.0, 10.0, 4.0))[0] is Side.RIGHT
