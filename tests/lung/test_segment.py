"""Lung segmentation on synthetic phantoms with known lungs, airways and nodules."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from medsnowball.core import (
    ConfigError,
    CTVolume,
    ImageGeometry,
    LungSegmentation,
    MissingDependencyError,
)
from medsnowball.lung import segment_lungs
from medsnowball.lung.airway import large_airways
from medsnowball.lung.body import body_mask
from medsnowball.synth import Phantom, Tissue


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def test_volumes_match_truth(lung_phantom: Phantom, lung_seg: LungSegmentation):
    truth = lung_phantom.truth
    # The closing adds the hilar concavities, so the masks run a few per cent large.
    assert lung_seg.right_ml == pytest.approx(truth.right_lung_ml, rel=0.08)
    assert lung_seg.left_ml == pytest.approx(truth.left_lung_ml, rel=0.08)
    voxel_ml = lung_phantom.volume.geometry.voxel_volume_mm3 / 1000.0
    assert lung_seg.right_ml == pytest.approx(np.count_nonzero(lung_seg.labels == 1) * voxel_ml)


def test_left_and_right_are_not_swapped(lung_phantom: Phantom, lung_seg: LungSegmentation):
    for label in (1, 2):
        assert _dice(lung_seg.labels == label, lung_phantom.lung_labels == label) > 0.95
    # Patient's right lung lies at smaller LPS x.
    geo = lung_seg.geometry
    xr = geo.index_to_world(np.argwhere(lung_seg.labels == 1).mean(axis=0))[0]
    xl = geo.index_to_world(np.argwhere(lung_seg.labels == 2).mean(axis=0))[0]
    assert xr < xl


def test_output_grid_and_body(lung_phantom: Phantom, lung_seg: LungSegmentation):
    assert lung_seg.labels.shape == lung_phantom.volume.shape
    assert lung_seg.labels.dtype == np.uint8
    assert lung_seg.geometry == lung_phantom.volume.geometry
    assert lung_seg.body is not None
    assert lung_seg.body.shape == lung_phantom.volume.shape
    # Lungs lie inside the body; the air around the patient does not.
    assert not np.any(lung_seg.mask & ~lung_seg.body)
    assert not lung_seg.body[:, 0, 0].any()
    assert set(np.unique(lung_seg.labels)) == {0, 1, 2}


def test_juxtapleural_nodules_kept_inside(lung_phantom: Phantom, lung_seg: LungSegmentation):
    jp = [n for n in lung_phantom.truth.nodules if n.location == "juxtapleural"]
    assert len(jp) == 3
    for n in jp:
        voxels = lung_phantom.nodule_labels == n.id
        inside = lung_seg.labels[voxels]
        assert np.mean(inside > 0) > 0.8, n
        side = 1 if n.side == "right" else 2
        assert np.mean(inside == side) > 0.8


def test_juxtapleural_nodule_cut_out_without_filling(lung_phantom: Phantom):
    # A plain low-density mask loses solid juxtapleural nodules: the filling is what keeps them.
    raw = segment_lungs(lung_phantom.volume, fill_holes=False)
    n = next(n for n in lung_phantom.truth.nodules if n.location == "juxtapleural")
    assert np.mean(raw.labels[lung_phantom.nodule_labels == n.id] > 0) < 0.5
    vessels = lung_phantom.tissue_labels == Tissue.LUNG_VESSEL
    assert np.mean(raw.mask[vessels]) < 0.3  # vessels are holes without filling


def test_airways_excluded(lung_phantom: Phantom, lung_seg: LungSegmentation):
    lumen = lung_phantom.tissue_labels == Tissue.AIRWAY_LUMEN
    assert lumen.sum() > 200
    assert np.mean(lung_seg.mask[lumen]) < 0.1


def test_trachea_tracked(lung_phantom: Phantom):
    vol = lung_phantom.volume
    hu = np.clip(vol.array, -1024, 3071).astype(np.float32)
    body = body_mask(hu, vol.spacing_zyx)
    airway = large_airways(hu, (hu < -400) & body, body, vol.geometry)
    lumen = lung_phantom.tissue_labels == Tissue.AIRWAY_LUMEN
    assert np.mean(airway[lumen]) > 0.8
    assert np.mean(lung_phantom.lung_labels[airway] > 0) < 0.05  # no leak into the lungs


def test_no_trachea_found_in_empty_image():
    geo = ImageGeometry((8, 32, 32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    hu = np.full(geo.shape_zyx, -1000.0, dtype=np.float32)
    body = np.zeros(geo.shape_zyx, bool)
    assert not large_airways(hu, body, body, geo).any()


def test_lungs_touching_at_anterior_junction_are_separated(lung_phantom: Phantom):
    truth = lung_phantom.lung_labels
    arr = np.array(lung_phantom.volume.array, dtype=np.float32)
    bridged = np.zeros(arr.shape, bool)
    nz = arr.shape[0]
    for k in range(nz // 3, 2 * nz // 3):
        rows = np.nonzero((truth[k] == 1).any(axis=1) & (truth[k] == 2).any(axis=1))[0]
        for j in rows[:8]:  # the most anterior rows holding both lungs
            xr = np.nonzero(truth[k, j] == 1)[0].max()
            xl = np.nonzero(truth[k, j] == 2)[0].min()
            if xl > xr + 1:
                bridged[k, j, xr + 1 : xl] = True
    assert bridged.sum() > 100
    arr[bridged] = -850.0
    vol = lung_phantom.volume.with_array(arr)
    seg = segment_lungs(vol)
    for label in (1, 2):
        assert _dice(seg.labels == label, truth == label) > 0.93
    got = seg.labels[bridged]
    # The bridge is shared between the lungs rather than handed to one of them.
    assert np.mean(got == 1) > 0.1
    assert np.mean(got == 2) > 0.1


def test_two_slice_input(lung_phantom: Phantom):
    vol = lung_phantom.volume
    k = vol.shape[0] // 2
    geo = vol.geometry
    origin = geo.index_to_world([k, 0, 0])
    sub_geo = ImageGeometry((2, *geo.shape_zyx[1:]), geo.spacing_zyx, tuple(origin))
    sub = CTVolume(np.asarray(vol.array[k : k + 2]), sub_geo)
    seg = segment_lungs(sub)
    assert seg.labels.shape == (2, *geo.shape_zyx[1:])
    for label in (1, 2):
        assert _dice(seg.labels == label, lung_phantom.lung_labels[k : k + 2] == label) > 0.9
    assert seg.zone_bounds_z is not None


def test_int16_input_with_scanner_padding(lung_phantom: Phantom, lung_seg: LungSegmentation):
    arr = np.asarray(lung_phantom.volume.array, dtype=np.float32)
    padded = np.round(arr).astype(np.int16)
    yy, xx = np.mgrid[: arr.shape[1], : arr.shape[2]]
    c = (arr.shape[1] - 1) / 2
    outside = (yy - c) ** 2 + (xx - c) ** 2 > (0.5 * arr.shape[1]) ** 2
    padded[:, outside] = -2048
    seg = segment_lungs(lung_phantom.volume.with_array(padded))
    assert seg.right_ml == pytest.approx(lung_seg.right_ml, rel=0.02)
    assert seg.left_ml == pytest.approx(lung_seg.left_ml, rel=0.02)


def test_flipped_axes_keep_patient_sides(lung_phantom: Phantom, lung_seg: LungSegmentation):
    # Same image stored with x reversed (direction -1): sides follow the world, not the array.
    vol = lung_phantom.volume
    geo = vol.geometry
    flip = np.diag([-1.0, 1.0, 1.0])
    origin = geo.index_to_world([0, 0, geo.shape_zyx[2] - 1])
    geo2 = dataclasses.replace(geo, origin_lps=tuple(origin), direction=flip)
    seg = segment_lungs(CTVolume(np.ascontiguousarray(vol.array[:, :, ::-1]), geo2))
    for label in (1, 2):  # identical up to tie-breaks on the midline
        assert _dice(seg.labels[:, :, ::-1] == label, lung_seg.labels == label) > 0.995


def test_no_lungs_in_soft_tissue_block():
    geo = ImageGeometry((6, 40, 40), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    arr = np.full(geo.shape_zyx, -1000.0, dtype=np.float32)
    arr[:, 5:35, 5:35] = 40.0
    seg = segment_lungs(CTVolume(arr, geo))
    assert not seg.mask.any()
    assert seg.right_ml == 0.0
    assert seg.left_ml == 0.0
    assert seg.zone_bounds_z is None


def test_unknown_backend_raises(lung_phantom: Phantom):
    with pytest.raises(ConfigError, match="backend"):
        segment_lungs(lung_phantom.volume, backend="magic")


def test_lungmask_backend_missing_is_a_clean_error(lung_phantom: Phantom, monkeypatch):
    monkeypatch.setitem(sys.modules, "lungmask", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match="lungmask"):
        segment_lungs(lung_phantom.volume, backend="lungmask")
