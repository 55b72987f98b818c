"""Zone boundaries and point location."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medsnowball.core import ImageGeometry, LungSegmentation, Side, Zone
from medsnowball.lung import locate, lung_zone_bounds
from medsnowball.lung.segment import make_segmentation
from medsnowball.lung.zones import zone_of_z
from medsnowball.synth import Phantom


def test_zone_bounds_are_thirds_of_the_lung_height():
    geo = ImageGeometry((10, 4, 4), (3.0, 1.0, 1.0), (0.0, 0.0, 100.0))
    labels = np.zeros(geo.shape_zyx, np.uint8)
    labels[1:8, 1:3, 1:3] = 1  # slices 1..7: world z 103 .. 121
    upper_middle, middle_lower = lung_zone_bounds(labels, geo)
    assert upper_middle == pytest.approx(121 - 6.0)
    assert middle_lower == pytest.approx(103 + 6.0)
    assert zone_of_z(120.0, (upper_middle, middle_lower)) is Zone.UPPER
    assert zone_of_z(115.0, (upper_middle, middle_lower)) is Zone.UPPER  # on the boundary
    assert zone_of_z(112.0, (upper_middle, middle_lower)) is Zone.MIDDLE
    assert zone_of_z(108.9, (upper_middle, middle_lower)) is Zone.LOWER
    assert lung_zone_bounds(np.zeros_like(labels), geo) is None


def test_zone_bounds_follow_world_z_when_slices_run_downwards():
    flip = np.diag([1.0, 1.0, -1.0])
    geo = ImageGeometry((10, 4, 4), (3.0, 1.0, 1.0), (0.0, 0.0, 100.0), flip)
    labels = np.zeros(geo.shape_zyx, np.uint8)
    labels[1:8] = 2  # world z 97 .. 79
    upper_middle, middle_lower = lung_zone_bounds(labels, geo)
    assert upper_middle == pytest.approx(97 - 6.0)
    assert middle_lower == pytest.approx(79 + 6.0)


def test_zone_bounds_match_the_phantom(lung_phantom: Phantom, lung_seg: LungSegmentation):
    got = lung_seg.zone_bounds_z
    want = lung_phantom.truth.zone_bounds_z
    assert got is not None
    assert want is not None
    dz = lung_phantom.volume.spacing_zyx[0]
    assert got[0] == pytest.approx(want[0], abs=3 * dz)
    assert got[1] == pytest.approx(want[1], abs=3 * dz)


def test_locate_nodules(lung_phantom: Phantom, lung_seg: LungSegmentation):
    bounds = lung_phantom.truth.zone_bounds_z
    for n in lung_phantom.truth.nodules:
        side, zone = locate(lung_seg, n.center_lps)
        assert side is Side(n.side)
        z = n.center_lps[2]
        if min(abs(z - bounds[0]), abs(z - bounds[1])) > 8.0:  # clear of a zone boundary
            assert zone is Zone(n.zone)


def test_locate_outside_the_lungs(lung_seg: LungSegmentation):
    geo = lung_seg.geometry
    corner = geo.index_to_world([0, 0, 0])
    assert locate(lung_seg, corner) == (None, None)
    far = geo.index_to_world([-100, -100, -100])
    assert locate(lung_seg, far) == (None, None)


def test_locate_just_outside_a_lung_takes_the_nearest_side():
    geo = ImageGeometry((5, 20, 20), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    labels = np.zeros(geo.shape_zyx, np.uint8)
    labels[:, 5:15, 2:8] = 1
    labels[:, 5:15, 12:18] = 2
    seg = make_segmentation(labels, geo)
    assert locate(seg, (9.0, 10.0, 4.0))[0] is Side.RIGHT  # x = 9: one voxel off the right lung
    assert locate(seg, (11.0, 10.0, 4.0))[0] is Side.LEFT
    no_bounds = dataclasses.replace(seg, zone_bounds_z=None)
    assert locate(no_bounds, (4.0, 10.0, 8.0)) == locate(seg, (4.0, 10.0, 8.0))
