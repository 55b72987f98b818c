"""Shape and intensity features of blob points (nodule = blob, vessel = tube).

For a point of scale ``sigma`` the expected blob radius is ``r = sqrt(3) * sigma``. In a
cubic patch of the iso lung image the point's object is thresholded at half its contrast
(centre HU over the median HU of the shell ``1.5 r .. 2 r``) and the connected component
holding the centre is analysed inside a ball of radius ``2 r``. A nodule gives a compact,
roundish component that mostly lies within ``r`` and leaves the ball nowhere (or where a
vessel touches it); a vessel gives an elongated component that crosses the ball. The
largest ball inscribed in the component near the centre (a distance transform) measures a
nodule's radius even when vessels are attached, but only a vessel's half width.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.detection.blobs import BlobPoints

FEATURE_NAMES: tuple[str, ...] = (
    "log_sigma",
    "response",
    "dot",
    "b2",
    "b3",
    "smoothed_hu",
    "centre_hu",
    "background_hu",
    "contrast",
    "log_size_ratio",
    "central_fraction",
    "exit_fraction",
    "n_exits",
    "elongation",
    "flatness",
    "compactness",
    "log_inscribed_ratio",
    "inscribed_eq_ratio",
    "core_fraction",
    "mean_hu",
    "std_hu",
    "pleura_distance_ratio",
    "log_pleura_distance",
    "ray_r50_log",
    "ray_r50_ratio",
    "ray_r50_cv",
    "ray_r50_spread",
    "ray_capped50",
    "ray_r25_ratio",
    "ray_capped25",
    "scan_bright_hu",
    "scan_parenchyma_hu",
    "centre_minus_bright",
    "soft_channel",
)


def scan_features(
    image: NDArray[np.float32], mask: NDArray[np.bool_], parenchyma_hu: float
) -> dict[str, float]:
    """Scan-level context shared by every point of a scan.

    ``scan_bright_hu`` (99.9th percentile of the lungs: the vessels' HU, about 40 without
    and 200+ with intravenous contrast) lets the scorer tell a solid nodule from a vessel
    whatever the contrast phase; ``scan_parenchyma_hu`` is the aerated lung's median.

    Args:
        image: Iso lung image ``(z, y, x)``.
        mask: Lung mask on the same grid.
        parenchyma_hu: Median HU of aerated lung.

    Returns:
        The scan features.
    """
    values = image[mask]
    if values.size > 2_000_000:
        values = values[:: values.size // 2_000_000 + 1]
    bright = float(np.percentile(values, 99.9)) if values.size else parenchyma_hu
    return {"scan_bright_hu": bright, "scan_parenchyma_hu": float(parenchyma_hu)}


def _fibonacci_directions(n: int) -> NDArray[np.float64]:
    """``n`` unit vectors ``(n, 3)`` (z, y, x) spread evenly over the sphere."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    rho = np.sqrt(1.0 - z * z)
    phi = math.pi * (1.0 + math.sqrt(5.0)) * i
    return np.stack([z, rho * np.sin(phi), rho * np.cos(phi)], axis=1)


#: Ray directions of the radial profile features.
RAY_DIRECTIONS = _fibonacci_directions(48)
#: Rays run out to this many blob radii.
RAY_REACH = 2.5


def _ray_radii(
    image: NDArray[np.float32],
    centre_zyx: NDArray[np.float64],
    reach_vox: float,
    threshold: float,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Distance (voxels) along each ray where the image first falls below ``threshold``.

    Returns:
        ``(radii (48,), capped (48,))``: rays that never fall below it are capped at
        ``reach_vox``.
    """
    t = np.arange(0.5, reach_vox + 0.25, 0.5)
    pts = centre_zyx[None, None, :] + RAY_DIRECTIONS[:, None, :] * t[None, :, None]
    values = ndimage.map_coordinates(image, pts.reshape(-1, 3).T, order=1, mode="nearest").reshape(
        len(RAY_DIRECTIONS), len(t)
    )
    below = values < threshold
    capped = ~below.any(axis=1)
    first = np.argmax(below, axis=1)
    radii = np.where(capped, reach_vox, t[first] - 0.25)
    return radii, capped


def radial_features(
    image: NDArray[np.float32],
    centre_zyx: NDArray[np.float64],
    r_mm: float,
    centre_hu: float,
    background_hu: float,
    spacing_mm: float,
) -> dict[str, float]:
    """Radial profile of the object: where each of 48 rays leaves it.

    At half (and a quarter of) the contrast between centre and background, a nodule ends at
    a similar radius in every direction, even with a vessel or the pleura attached on one
    side (a few capped rays); a vessel runs out of the ball in two directions and ends
    early in the others.

    Args:
        image: Iso lung image.
        centre_zyx: Ray origin (iso index).
        r_mm: Blob radius of the point's scale.
        centre_hu: HU at the centre.
        background_hu: HU of the surroundings.
        spacing_mm: Iso voxel size.

    Returns:
        The ``ray_*`` features.
    """
    contrast = max(centre_hu - background_hu, 30.0)
    reach = RAY_REACH * r_mm / spacing_mm
    r50, cap50 = _ray_radii(image, centre_zyx, reach, background_hu + 0.5 * contrast)
    r25, cap25 = _ray_radii(image, centre_zyx, reach, background_hu + 0.25 * contrast)
    r50_mm = r50 * spacing_mm
    med50 = float(np.median(r50_mm))
    p20, p80 = np.percentile(r50_mm, [20, 80])
    return {
        "ray_r50_log": math.log(max(med50, 0.25)),
        "ray_r50_ratio": med50 / r_mm,
        "ray_r50_cv": float(r50_mm.std() / max(r50_mm.mean(), 0.25)),
        "ray_r50_spread": float(p20 / max(p80, 0.25)),
        "ray_capped50": float(cap50.mean()),
        "ray_r25_ratio": float(np.median(r25 * spacing_mm)) / max(med50, 0.25),
        "ray_capped25": float(cap25.mean()),
    }


def _ball_offsets(radius_vox: int) -> NDArray[np.float64]:
    r = np.arange(-radius_vox, radius_vox + 1, dtype=np.float64)
    zz, yy, xx = np.meshgrid(r, r, r, indexing="ij")
    return np.sqrt(zz**2 + yy**2 + xx**2)


_DIST_CACHE: dict[int, NDArray[np.float64]] = {}


def _distance_patch(radius_vox: int) -> NDArray[np.float64]:
    if radius_vox not in _DIST_CACHE:
        _DIST_CACHE[radius_vox] = _ball_offsets(radius_vox)
    return _DIST_CACHE[radius_vox]


def point_features(
    image: NDArray[np.float32],
    zyx: NDArray[np.floating],
    sigma_mm: float,
    spacing_mm: float,
    pleura_distance_mm: float,
) -> tuple[dict[str, float], NDArray[np.float64], float]:
    """Region features of one point (the Hessian ones are added by :func:`blob_features`).

    Args:
        image: Iso lung image ``(z, y, x)``.
        zyx: Point index (z, y, x) on the iso grid.
        sigma_mm: Scale of the point.
        spacing_mm: Iso voxel size.
        pleura_distance_mm: Distance from the point to the lung-mask boundary.

    Returns:
        ``(features, centroid_zyx, diameter_mm)``: the region features, the refined centre
        (component centroid, iso index) and the component's equivalent diameter.
    """
    r_mm = math.sqrt(3.0) * sigma_mm
    r_vox = r_mm / spacing_mm
    half = math.ceil(2.0 * r_vox) + 2
    dist_full = _distance_patch(half)
    c = np.rint(np.asarray(zyx)).astype(int)
    lo = c - half
    hi = c + half + 1
    shape = np.asarray(image.shape)
    plo = np.maximum(lo, 0)
    phi = np.minimum(hi, shape)
    patch = image[plo[0] : phi[0], plo[1] : phi[1], plo[2] : phi[2]]
    d = dist_full[
        plo[0] - lo[0] : plo[0] - lo[0] + patch.shape[0],
        plo[1] - lo[1] : plo[1] - lo[1] + patch.shape[1],
        plo[2] - lo[2] : plo[2] - lo[2] + patch.shape[2],
    ]
    core = d <= max(1.0, 0.5 * r_vox)
    shell = (d >= 1.5 * r_vox) & (d <= 2.0 * r_vox + 0.5)
    ball = d <= 2.0 * r_vox + 0.5
    centre_hu = float(patch[core].mean())
    background_hu = float(np.median(patch[shell])) if shell.any() else float(patch.min())
    contrast = centre_hu - background_hu
    thr = background_hu + 0.5 * max(contrast, 30.0)
    fg = (patch > thr) & ball
    seed_candidates = np.argwhere(core & fg)
    feats: dict[str, float] = {
        "centre_hu": centre_hu,
        "background_hu": background_hu,
        "contrast": contrast,
    }
    centroid = np.asarray(zyx, dtype=np.float64)
    if seed_candidates.size == 0:
        feats.update(
            log_size_ratio=-3.0,
            central_fraction=0.0,
            exit_fraction=0.0,
            n_exits=0.0,
            elongation=1.0,
            flatness=1.0,
            compactness=0.0,
            log_inscribed_ratio=-3.0,
            inscribed_eq_ratio=0.0,
            core_fraction=0.0,
            mean_hu=centre_hu,
            std_hu=0.0,
        )
        diameter = 2.0 * r_mm
    else:
        lab, _ = ndimage.label(fg)
        vals = patch[tuple(seed_candidates.T)]
        seed = seed_candidates[int(np.argmax(vals))]
        comp = lab == lab[tuple(seed)]
        n = int(comp.sum())
        vol = n * spacing_mm**3
        diameter = (6.0 * vol / math.pi) ** (1.0 / 3.0)
        coords = np.argwhere(comp).astype(np.float64)
        cen = coords.mean(axis=0)
        centroid = cen + plo
        inner = comp & (d <= r_vox + 0.5)
        outer_shell = (d > 2.0 * r_vox - 0.5) & ball
        exits = comp & outer_shell
        n_exits = ndimage.label(exits)[1] if exits.any() else 0
        if n >= 4:
            cov = np.cov((coords - cen).T) + np.eye(3) / 12.0
            ev = np.sort(np.linalg.eigvalsh(cov))[::-1]
            elongation = math.sqrt(ev[0] / max(ev[2], 1e-6))
            flatness = math.sqrt(ev[1] / max(ev[0], 1e-6))
        else:
            elongation, flatness = 1.0, 1.0
        rmax = float(np.sqrt(((coords - cen) ** 2).sum(axis=1)).max()) + 0.5
        compact = n / (4.0 / 3.0 * math.pi * rmax**3)
        # Largest inscribed ball near the centre: a nodule's radius, a vessel's half width.
        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(comp))
        depth = ndimage.distance_transform_edt(np.pad(comp[box], 1))[1:-1, 1:-1, 1:-1]
        depth *= spacing_mm
        central = comp[box] & (d[box] <= r_vox + 0.5)
        r_in = float(depth[central].max()) if central.any() else float(depth.max())
        core_frac = np.count_nonzero(depth >= 0.5 * r_in) / n
        feats.update(
            log_size_ratio=math.log(max(diameter, 0.5) / (2.0 * r_mm)),
            central_fraction=float(inner.sum()) / n,
            exit_fraction=float(exits.sum()) / max(1, int(outer_shell.sum())),
            n_exits=float(n_exits),
            elongation=float(elongation),
            flatness=float(flatness),
            compactness=float(min(compact, 2.0)),
            log_inscribed_ratio=math.log(max(r_in, 0.25) / r_mm),
            inscribed_eq_ratio=r_in / max(0.5 * diameter, 0.25),
            core_fraction=float(core_frac),
            mean_hu=float(patch[comp].mean()),
            std_hu=float(patch[comp].std()),
        )
    feats["pleura_distance_ratio"] = pleura_distance_mm / r_mm
    feats["log_pleura_distance"] = math.log1p(max(pleura_distance_mm, 0.0))
    origin = centroid if np.linalg.norm(centroid - np.asarray(zyx)) <= r_vox else np.asarray(zyx)
    feats.update(radial_features(image, origin, r_mm, centre_hu, background_hu, spacing_mm))
    return feats, centroid, diameter


def hessian_features(points: BlobPoints, i: int) -> dict[str, float]:
    """Scale and Hessian-shape features of point ``i``."""
    l1, l2, l3 = points.eig[i]
    denom = abs(l1) if abs(l1) > 1e-6 else 1e-6
    b2 = -l2 / denom  # 1 for a bright blob or tube, ~0 for a plate
    b3 = -l3 / denom  # 1 for a bright blob, ~0 for a tube or plate
    dot = (l3 * l3) / denom if (l1 < 0 and l2 < 0 and l3 < 0) else 0.0
    return {
        "log_sigma": math.log(points.sigma_mm[i]),
        "response": float(points.response[i]),
        "dot": float(dot),
        "b2": float(b2),
        "b3": float(b3),
        "smoothed_hu": float(points.smoothed_hu[i]),
    }


__all__ = ["FEATURE_NAMES", "hessian_features", "point_features"]
