"""Lungs cut by the field of view (in-plane) or by the scan range, and their quality flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medsnowball.core import CTVolume, ImageGeometry, LungSegmentation
from medsnowball.io import load_ct
from medsnowball.lung import segment_lungs
from medsnowball.lung.body import body_mask
from medsnowball.lung.coverage import CODE_FOV_EDGE, CODE_SCAN_RANGE
from medsnowball.synth import Phantom

#: Right / left lung pixel counts of lungmask's published test over the two slices.
LUNGMASK_RIGHT_PX = 64_752
LUNGMASK_LEFT_PX = 36_536


def _crop(volume: CTVolume, box: tuple[slice, slice, slice]) -> CTVolume:
    """Sub-volume of ``volume`` with the geometry of the crop (same world positions)."""
    geo = volume.geometry
    start = [s.start or 0 for s in box]
    array = np.ascontiguousarray(np.asarray(volume.array)[box])
    sub = ImageGeometry(
        array.shape, geo.spacing_zyx, tuple(geo.index_to_world(start)), geo.direction
    )
    return CTVolume(array, sub)


def _codes(seg: LungSegmentation) -> set[str]:
    return {f.code for f in seg.quality}


def _message(seg: LungSegmentation, code: str) -> str:
    return next(f.message for f in seg.quality if f.code == code)


def _extent(mask: np.ndarray, axis: int) -> tuple[int, int]:
    other = tuple(a for a in range(3) if a != axis)
    idx = np.nonzero(mask.any(axis=other))[0]
    return int(idx[0]), int(idx[-1])


def _lateral_box(truth: np.ndarray, fraction: float) -> tuple[slice, slice, slice]:
    """Crop away ``fraction`` of each lung's left-right extent on its lateral side."""
    r0, r1 = _extent(truth == 1, 2)
    l0, l1 = _extent(truth == 2, 2)
    x0 = r0 + round(fraction * (r1 - r0))
    x1 = l1 - round(fraction * (l1 - l0)) + 1
    return slice(None), slice(None), slice(x0, x1)


def _ap_box(truth: np.ndarray, fraction: float, anterior: bool) -> tuple[slice, slice, slice]:
    """Crop away ``fraction`` of the lungs' antero-posterior extent at the front or back."""
    y0, y1 = _extent(truth > 0, 1)
    cut = round(fraction * (y1 - y0))
    rows = slice(y0 + cut, None) if anterior else slice(None, y1 - cut + 1)
    return slice(None), rows, slice(None)


def _assert_volumes_within(seg: LungSegmentation, truth: np.ndarray, rel: float) -> None:
    ml = seg.geometry.voxel_volume_mm3 / 1000.0
    for label, got in ((1, seg.right_ml), (2, seg.left_ml)):
        want = np.count_nonzero(truth == label) * ml
        assert want > 100.0
        assert got == pytest.approx(want, rel=rel), (label, got, want)


def test_uncut_phantom_raises_no_flag(lung_seg: LungSegmentation):
    assert lung_seg.quality == ()
    assert lung_seg.midline_x_lps is not None


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3])
def test_lateral_crops_keep_lungs_that_touch_the_edge(lung_phantom: Phantom, fraction: float):
    box = _lateral_box(lung_phantom.lung_labels, fraction)
    vol = _crop(lung_phantom.volume, box)
    truth = lung_phantom.lung_labels[box]
    # The crop does cut both lungs: lung truth on the first and last column.
    assert (truth[:, :, 0] == 1).sum() > 100
    assert (truth[:, :, -1] == 2).sum() > 100
    seg = segment_lungs(vol)
    _assert_volumes_within(seg, truth, 0.10)
    # Sides are not mixed up at the cut.
    assert np.mean(seg.labels[truth == 1] == 1) > 0.95
    assert np.mean(seg.labels[truth == 2] == 2) > 0.95
    assert _codes(seg) == {CODE_FOV_EDGE}
    message = _message(seg, CODE_FOV_EDGE)
    assert "right lung at the right edge" in message
    assert "left lung at the left edge" in message
    assert "lower bounds" in message
    assert next(f for f in seg.quality if f.code == CODE_FOV_EDGE).severity == "review"


@pytest.mark.parametrize(("fraction", "anterior"), [(0.2, True), (0.3, True), (0.3, False)])
def test_anterior_and_posterior_crops(lung_phantom: Phantom, fraction: float, anterior: bool):
    box = _ap_box(lung_phantom.lung_labels, fraction, anterior)
    vol = _crop(lung_phantom.volume, box)
    truth = lung_phantom.lung_labels[box]
    seg = segment_lungs(vol)
    _assert_volumes_within(seg, truth, 0.10)
    assert _codes(seg) == {CODE_FOV_EDGE}
    edge = "anterior" if anterior else "posterior"
    message = _message(seg, CODE_FOV_EDGE)
    assert f"right lung at the {edge} edge" in message
    assert f"left lung at the {edge} edge" in message


def test_body_mask_closes_the_outline_the_crop_opened(lung_phantom: Phantom):
    box = _lateral_box(lung_phantom.lung_labels, 0.3)
    vol = _crop(lung_phantom.volume, box)
    hu = np.clip(np.asarray(vol.array, dtype=np.float32), -1024, 3071)
    body = body_mask(hu, vol.spacing_zyx)
    truth = lung_phantom.lung_labels[box]
    assert np.mean(body[truth > 0]) > 0.99  # the cut lungs are inside the body
    assert not body[:, 0, :].any()  # the air in front of the chest is still outside
    assert not body[:, -1, :].any()


@pytest.mark.parametrize("cranial", [True, False])
def test_scan_range_cutting_the_lungs(lung_phantom: Phantom, cranial: bool):
    truth = lung_phantom.lung_labels
    geo = lung_phantom.volume.geometry
    k0, k1 = _extent(truth > 0, 0)
    cut = round(0.25 * (k1 - k0))
    # Index z runs cranially when the direction's z column points to +z (superior).
    up = geo.direction[2, 2] > 0
    drop_high = cranial == up
    zs = slice(None, k1 - cut + 1) if drop_high else slice(k0 + cut, None)
    box = (zs, slice(None), slice(None))
    seg = segment_lungs(_crop(lung_phantom.volume, box))
    _assert_volumes_within(seg, truth[box], 0.10)
    assert _codes(seg) == {CODE_SCAN_RANGE}
    message = _message(seg, CODE_SCAN_RANGE)
    assert ("superior" in message) == cranial
    assert ("inferior" in message) == (not cranial)
    assert "does not cover the lungs" in message


def test_scan_starting_just_above_the_apex_is_not_flagged(lung_phantom: Phantom):
    truth = lung_phantom.lung_labels
    k0, k1 = _extent(truth > 0, 0)
    box = (slice(max(0, k0 - 2), k1 + 3), slice(None), slice(None))
    seg = segment_lungs(_crop(lung_phantom.volume, box))
    assert seg.quality == ()


# ---------------------------------------------------------------- real scanner data


@pytest.fixture(scope="module")
def chest(shared_data: Path) -> tuple[CTVolume, LungSegmentation]:
    vol = load_ct(shared_data / "real" / "chest_2slices_stripped")
    return vol, segment_lungs(vol)


def test_real_slices_match_lungmask_within_5_percent(chest):
    _vol, seg = chest
    assert np.count_nonzero(seg.labels == 1) == pytest.approx(LUNGMASK_RIGHT_PX, rel=0.05)
    assert np.count_nonzero(seg.labels == 2) == pytest.approx(LUNGMASK_LEFT_PX, rel=0.05)
    # Two 1 mm slices cannot cover the lungs: the scan-range flag says so; the FOV flag not.
    assert _codes(seg) == {CODE_SCAN_RANGE}
    assert seg.midline_x_lps is not None
    xr = seg.geometry.index_to_world(np.argwhere(seg.labels == 1).mean(axis=0))[0]
    xl = seg.geometry.index_to_world(np.argwhere(seg.labels == 2).mean(axis=0))[0]
    assert xr < seg.midline_x_lps < xl


@pytest.mark.parametrize(("x0", "x1"), [(100, 420), (130, 390), (160, 360)])
def test_real_slices_cropped_so_the_lungs_touch_the_edges(chest, x0: int, x1: int):
    vol, full = chest
    box = (slice(None), slice(None), slice(x0, x1))
    ref = full.labels[box]
    assert (ref[:, :, 0] == 1).sum() > 50
    assert (ref[:, :, -1] == 2).sum() > 50
    seg = segment_lungs(_crop(vol, box))
    for label in (1, 2):
        got = np.count_nonzero(seg.labels == label)
        assert got == pytest.approx(np.count_nonzero(ref == label), rel=0.10), label
        assert np.mean(seg.labels[ref == label] == label) > 0.95
    assert CODE_FOV_EDGE in _codes(seg)
    assert "right lung at the right edge" in _message(seg, CODE_FOV_EDGE)


def test_real_abdomen_lung_bases_cut_at_the_top(shared_data: Path):
    vol = load_ct(shared_data / "real" / "abdomen_lung_bases.nii.gz")
    seg = segment_lungs(vol)
    assert seg.right_ml > 20
    assert seg.left_ml > 20
    assert CODE_SCAN_RANGE in _codes(seg)
    message = _message(seg, CODE_SCAN_RANGE)
    assert "superior" in message
    assert "inferior" not in message
    # Nothing is found below the lung bases (no bowel gas, no mattress under the back).
    z = vol.geometry.index_to_world(
        np.stack([np.arange(vol.shape[0]), np.zeros(vol.shape[0]), np.zeros(vol.shape[0])], 1)
    )[:, 2]
    per_slice = seg.mask.reshape(seg.mask.shape[0], -1).sum(axis=1)
    top = np.argsort(-z)[:15]
    assert per_slice[top].sum() == per_slice.sum()
