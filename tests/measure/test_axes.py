"""Long/short axis and mean diameter on analytic shapes with known axes."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import ConfigError
from medsnowball.measure import axial_axes, round_half_up, slice_axes


def ellipsoid(
    semi_mm: tuple[float, float, float],
    spacing: tuple[float, float, float],
    theta: float,
    offset_vox: tuple[float, float, float],
    shape: tuple[int, int, int],
) -> tuple[np.ndarray, float]:
    """Voxels whose centre lies inside an ellipsoid with in-plane semi-axes (a, b), rotated
    by ``theta`` in the axial plane, and z semi-axis c. Returns the mask and the centre z
    index."""
    a, b, c = semi_mm
    centre = [(n - 1) / 2 + o for n, o in zip(shape, offset_vox, strict=True)]
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    pz = (z - centre[0]) * spacing[0]
    py = (y - centre[1]) * spacing[1]
    px = (x - centre[2]) * spacing[2]
    u = np.cos(theta) * px + np.sin(theta) * py
    v = -np.sin(theta) * px + np.cos(theta) * py
    return (u / a) ** 2 + (v / b) ** 2 + (pz / c) ** 2 <= 1.0, centre[0]


@pytest.mark.parametrize("spacing", [(2.5, 0.7, 0.7), (1.0, 0.6, 0.9), (0.625, 0.5, 0.5)])
def test_ellipsoid_axes_within_half_a_voxel(spacing: tuple[float, float, float]) -> None:
    semi = (6.0, 3.5, 4.0)
    shape = (int(12 / spacing[0]) + 6, int(18 / spacing[1]) + 6, int(18 / spacing[2]) + 6)
    errors = []
    for theta in np.linspace(0.0, np.pi / 2, 5):
        for off in [(0.2, 0.3, 0.2), (0.0, 0.0, 0.0), (0.4, 0.45, 0.1)]:
            mask, cz = ellipsoid(semi, spacing, theta, off, shape)
            res = axial_axes(mask, spacing)
            # the true section at the measured slice
            dz = (res.slice_index - cz) * spacing[0]
            f = np.sqrt(1.0 - (dz / semi[2]) ** 2)
            errors.append((res.long_axis_mm - 2 * semi[0] * f, res.short_axis_mm - 2 * semi[1] * f))
            assert res.mean_diameter_mm == round_half_up(
                (res.long_axis_mm + res.short_axis_mm) / 2, 1
            )
    err = np.abs(np.asarray(errors))
    voxel = max(spacing[1], spacing[2])
    assert err.mean() <= 0.5 * voxel  # typical error within half a voxel
    assert err.max() <= 1.0 * voxel  # a binary mask cannot do better than +- one voxel


def test_long_axis_is_found_for_rotated_shapes() -> None:
    # a thin oblique bar: long axis along it, short axis across it
    m = np.zeros((60, 60), bool)
    for i in range(40):
        m[10 + i, 10 + i] = m[10 + i, 11 + i] = True
    long_mm, short_mm, lp, _sp = slice_axes(m, (0.5, 0.5))
    assert long_mm == pytest.approx(40 * np.sqrt(2) * 0.5, abs=1.0)
    assert short_mm < 1.5
    (y0, x0), (y1, x1) = lp
    assert abs(abs(y1 - y0) - abs(x1 - x0)) < 2.0  # 45 degrees


def test_anisotropic_pixels_are_converted_to_mm() -> None:
    # a 20 x 10 pixel rectangle with 0.5 x 1.0 mm pixels is a 10 x 10 mm square
    m = np.zeros((1, 30, 20), bool)
    m[0, 5:25, 5:15] = True
    res = axial_axes(m, (1.0, 0.5, 1.0))
    assert res.long_axis_mm == pytest.approx(10 * np.sqrt(2), abs=0.7)
    assert res.area_mm2 == pytest.approx(100.0)


def test_largest_area_slice_is_measured() -> None:
    m = np.zeros((3, 40, 40), bool)
    m[0, 10:14, 10:14] = True
    m[1, 5:35, 18:22] = True  # the largest
    m[2, 10:20, 10:20] = True
    res = axial_axes(m, (1.0, 1.0, 1.0))
    assert res.slice_index == 1
    assert res.long_axis_mm == pytest.approx(30.0, abs=1.0)


def test_round_half_up_and_empty_masks() -> None:
    assert round_half_up(12.25) == 12.3
    assert round_half_up(12.24) == 12.2
    assert round_half_up(0.05) == 0.1
    res = axial_axes(np.zeros((2, 5, 5), bool), (1.0, 1.0, 1.0))
    assert res.long_axis_mm == 0.0
    assert res.mean_diameter_mm == 0.0
    with pytest.raises(ConfigError):
        axial_axes(np.zeros(5, bool), (1.0, 1.0, 1.0))


def test_single_voxel_has_one_voxel_diameter() -> None:
    m = np.zeros((1, 5, 5), bool)
    m[0, 2, 2] = True
    res = axial_axes(m, (1.0, 0.8, 0.8))
    assert res.long_axis_mm == pytest.approx(0.8, abs=0.2)
