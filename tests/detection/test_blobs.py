"""Blob filter, iso resampling and feature extraction on analytic shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.detection.blobs import block_mean, hessian_at, multiscale_blobs, sorted_eigenvalues
from medsnowball.detection.features import hessian_features, point_features
from medsnowball.detection.iso import build_iso_lung_image, resample_linear

BG = -850.0


def _ball_image(radius_mm: float, n: int = 48, contrast: float = 850.0) -> np.ndarray:
    c = (n - 1) / 2
    zz, yy, xx = np.mgrid[:n, :n, :n]
    d = np.sqrt((zz - c) ** 2 + (yy - c) ** 2 + (xx - c) ** 2)
    frac = np.clip(radius_mm + 0.5 - d, 0.0, 1.0)  # anti-aliased edge
    return (BG + contrast * frac).astype(np.float32)


def _tube_image(radius_mm: float, n: int = 48) -> np.ndarray:
    c = (n - 1) / 2
    _, yy, xx = np.mgrid[:n, :n, :n]
    d = np.sqrt((yy - c) ** 2 + (xx - c) ** 2)
    frac = np.clip(radius_mm + 0.5 - d, 0.0, 1.0)
    return (BG + 890.0 * frac).astype(np.float32)


@pytest.mark.parametrize("radius", [2.5, 5.0, 9.0])
def test_ball_found_at_its_centre_and_scale(radius):
    img = _ball_image(radius)
    mask = np.ones(img.shape, bool)
    pts = multiscale_blobs(img, mask, 1.0)
    best = int(np.argmax(pts.response))
    np.testing.assert_allclose(pts.zyx[best], [23.5] * 3, atol=1.0)
    sigma = pts.sigma_mm[best]
    # Scale selection: sigma ~ R / sqrt(3) (within one step of the sqrt(2) ladder).
    assert radius / math.sqrt(3) / 1.5 <= sigma <= radius / math.sqrt(3) * 1.5
    l1, l2, l3 = pts.eig[best]
    assert l1 < 0
    assert l2 < 0
    assert l3 < 0
    assert l3 / l1 > 0.6  # isotropic: all eigenvalues alike


def test_tube_has_a_vanishing_third_eigenvalue():
    img = _tube_image(2.0)
    pts = multiscale_blobs(img, np.ones(img.shape, bool), 1.0, scales_mm=(1.41,))
    centre = (np.abs(pts.zyx[:, 1] - 23.5) < 1) & (np.abs(pts.zyx[:, 2] - 23.5) < 1)
    inner = centre & (np.abs(pts.zyx[:, 0] - 23.5) < 12)
    if inner.any():  # a uniform tube may give no maxima at all along its axis
        l1 = pts.eig[inner, 0]
        l3 = pts.eig[inner, 2]
        assert np.all(np.abs(l3 / l1) < 0.1)
    g = ndimage.gaussian_filter(img, 1.5)
    h = hessian_at(g, np.array([[24, 24, 24]]))
    ev = sorted_eigenvalues(h)[0]
    assert ev[0] < 0
    assert ev[1] < 0
    assert abs(ev[2]) < 1e-3 * abs(ev[0])


def test_points_only_inside_mask():
    img = _ball_image(4.0)
    mask = np.zeros(img.shape, bool)
    mask[:, :, :10] = True
    pts = multiscale_blobs(img, mask, 1.0)
    assert np.all(pts.zyx[:, 2] < 12)


def test_thin_volume_does_not_crash():
    img = _ball_image(4.0)[20:22]
    pts = multiscale_blobs(img, np.ones(img.shape, bool), 1.0)
    assert len(pts) >= 1
    assert np.all(np.isfinite(pts.eig))


def test_block_mean():
    a = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    b = block_mean(a, 2)
    assert b.shape == (2, 2, 2)
    assert b[0, 0, 0] == pytest.approx(a[:2, :2, :2].mean())
    assert b[1, 1, 1] == pytest.approx(26.0)


def test_resample_linear_is_exact_on_ramps():
    z, y, x = np.mgrid[:6, :7, :8].astype(np.float32)
    a = 3 * z - 2 * y + 0.5 * x
    pz, py, px = np.linspace(0, 5, 11), np.array([0.0, 2.5, 6.0]), np.linspace(0, 7, 4)
    out = resample_linear(a, (pz, py, px))
    want = 3 * pz[:, None, None] - 2 * py[None, :, None] + 0.5 * px[None, None, :]
    np.testing.assert_allclose(out, want, atol=1e-4)


def test_iso_image_blanks_outside_the_lungs():
    geo = ImageGeometry((20, 40, 40), (2.5, 0.7, 0.7), (10.0, 20.0, -30.0))
    arr = np.full(geo.shape_zyx, 40.0, dtype=np.float32)  # chest wall everywhere
    mask = np.zeros(geo.shape_zyx, bool)
    mask[4:16, 8:32, 8:32] = True
    arr[mask] = -860.0
    iso = build_iso_lung_image(CTVolume(arr, geo), mask)
    assert iso is not None
    assert iso.geometry.spacing_zyx == (1.0, 1.0, 1.0)
    assert iso.parenchyma_hu == pytest.approx(-860.0)
    # The wall is gone: the whole iso image reads as parenchyma.
    np.testing.assert_allclose(iso.image, -860.0, atol=1e-3)
    # The iso grid is placed in world space consistently with the source.
    src_idx = iso.to_source_index(np.array([[0.0, 0.0, 0.0]]))[0]
    assert np.all(src_idx >= -1e-6)
    assert build_iso_lung_image(CTVolume(arr, geo), np.zeros_like(mask)) is None


def test_point_features_ball_versus_tube():
    ball = _ball_image(4.0)
    tube = _tube_image(2.0)
    c = np.array([23.5, 23.5, 23.5])
    fb, cen_b, d_b = point_features(ball, c, 4.0 / math.sqrt(3), 1.0, 20.0)
    ft, _, _ = point_features(tube, c, 4.0 / math.sqrt(3), 1.0, 20.0)
    assert d_b == pytest.approx(8.0, rel=0.15)
    np.testing.assert_allclose(cen_b, c, atol=0.6)
    assert fb["n_exits"] == 0
    assert ft["n_exits"] == 2
    assert fb["elongation"] < 1.3 < ft["elongation"]
    assert fb["central_fraction"] > ft["central_fraction"]
    assert fb["contrast"] > 500
    assert fb["pleura_distance_ratio"] == pytest.approx(20.0 / 4.0)


def test_hessian_features_ratios():
    from medsnowball.detection.blobs import BlobPoints

    pts = BlobPoints(
        zyx=np.zeros((2, 3)),
        sigma_mm=np.array([2.0, 2.0]),
        response=np.array([100.0, 100.0]),
        eig=np.array([[-10.0, -10.0, -10.0], [-10.0, -9.0, 0.5]]),
        smoothed_hu=np.array([-500.0, -500.0]),
    )
    blob = hessian_features(pts, 0)
    tube = hessian_features(pts, 1)
    assert blob["b3"] == pytest.approx(1.0)
    assert blob["dot"] == pytest.approx(10.0)
    assert tube["b3"] == pytest.approx(-0.05)
    assert tube["dot"] == 0.0
    assert tube["b2"] == pytest.approx(0.9)
