"""Training-free nodule candidate detection inside the lungs.

Steps:

1. the lungs' bounding box is resampled to a 1 mm isotropic image in which everything
   outside the lung mask reads as parenchyma (:mod:`medsnowball.detection.iso`);
2. blob points: local maxima of the scale-normalised LoG at scales matching 3-30 mm
   nodules, with Hessian eigenvalues (:mod:`medsnowball.detection.blobs`); a second "soft"
   channel does the same on the image clipped at -450 HU for faint nodules by vessels;
3. points that are not bright blobs or tubes (plates, dark structures) are dropped; the rest
   are ranked by a blob-weighted response and suppressed when a stronger point of at least
   the same scale lies within its blob radius (non-maximum suppression across scales);
4. shape and intensity features (:mod:`medsnowball.detection.features`), a calibrated
   score (:class:`~medsnowball.detection.scorer.CandidateScorer`);
5. duplicates merged: a candidate whose refined centre lies within the radius of a
   higher-scoring one is dropped;
6. centres mapped back to the input grid (index and LPS mm), sorted by score.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import Candidate, LungSegmentation
from medsnowball.core.volume import CTVolume
from medsnowball.detection.blobs import (
    SCALES_MM,
    BlobPoints,
    block_mean,
    level_for,
    multiscale_blobs,
)
from medsnowball.detection.features import hessian_features, point_features, scan_features
from medsnowball.detection.iso import ISO_SPACING_MM, IsoLungImage, build_iso_lung_image
from medsnowball.detection.scorer import CandidateScorer

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

DETECTOR_NAME = "classical"
#: Most blob points analysed per scan after non-maximum suppression.
MAX_POINTS = 3500
#: Second, "soft" channel for faint nodules next to vessels: LoG maxima of the image
#: clipped at ``SOFT_CLIP_HU`` (vessels and solid tissue become flat plateaus, ground glass
#: keeps its shape), at the scales of 4-10 mm nodules, up to ``SOFT_MAX_POINTS`` per scan.
SOFT_CLIP_HU = -450.0
SOFT_SCALES_MM = (1.41, 2.0, 2.83)
SOFT_MAX_POINTS = 600
#: A point needs ``b2`` (second eigenvalue ratio) above this: bright blob or tube.
MIN_B2 = 0.15
#: Voxel sizes (mm) of the phantoms the packaged scorer was fitted on; outside them (and for
#: lungs shorter than ``MIN_LUNG_HEIGHT_MM``) a warning says the scores are less reliable.
FITTED_SLICE_SPACING_MM = (0.6, 2.5)
FITTED_PIXEL_SPACING_MM = (0.5, 1.0)
MIN_LUNG_HEIGHT_MM = 40.0
#: Diameter of a blob per unit scale (ball of radius sqrt(3) sigma).
DIAMETER_PER_SIGMA = 2.0 * math.sqrt(3.0)


def _priority(points: BlobPoints) -> NDArray[np.float64]:
    """Blob-weighted response: ``sqrt(LoG) * l3 / l1`` (tubes and plates rank low)."""
    l1 = np.abs(points.eig[:, 0]) + 1e-6
    b3 = np.clip(-points.eig[:, 2] / l1, 0.0, 1.0)
    return np.sqrt(np.maximum(points.response, 0.0)) * b3


def _suppress(
    zyx: NDArray[np.float64],
    radius: NDArray[np.float64],
    order: NDArray[np.intp],
    limit: int,
    scale: NDArray[np.float64] | None = None,
) -> list[int]:
    """Greedy suppression in ``order``: a point is dropped when it lies within the radius of
    an already kept point (and, with ``scale``, is not of a larger scale than that point).

    The scale rule keeps a nodule's whole-nodule point even when a smaller point on its
    solid core or texture ranks higher.
    """
    kept: list[int] = []
    cap = max(16, min(limit, len(order)))
    kept_pos = np.zeros((cap, 3))
    kept_rad2 = np.zeros(cap)
    kept_scale = np.zeros(cap)
    n = 0
    for i in order:
        if n:
            d2 = ((kept_pos[:n] - zyx[i]) ** 2).sum(axis=1)
            near = d2 < kept_rad2[:n]
            if scale is not None:
                near &= scale[i] <= kept_scale[:n] * 1.01
            if near.any():
                continue
        if n == kept_pos.shape[0]:
            kept_pos = np.vstack([kept_pos, np.zeros_like(kept_pos)])
            kept_rad2 = np.concatenate([kept_rad2, np.zeros_like(kept_rad2)])
            kept_scale = np.concatenate([kept_scale, np.zeros_like(kept_scale)])
        kept.append(int(i))
        kept_pos[n] = zyx[i]
        kept_rad2[n] = radius[i] ** 2
        kept_scale[n] = 0.0 if scale is None else scale[i]
        n += 1
        if n >= limit:
            break
    return kept


def _pleura_distance(iso: IsoLungImage) -> tuple[NDArray[np.float64], int]:
    f = 2
    m = block_mean(iso.mask, f) >= 0.5
    d = ndimage.distance_transform_edt(m, sampling=(iso.geometry.spacing_zyx[0] * f,) * 3)
    return np.asarray(d, dtype=np.float64), f


def _scales_for(min_d: float, max_d: float) -> tuple[float, ...]:
    lo = min_d / DIAMETER_PER_SIGMA / 1.5
    hi = max_d / DIAMETER_PER_SIGMA * 1.2
    scales = tuple(s for s in SCALES_MM if lo <= s <= hi)
    return scales or (min(SCALES_MM, key=lambda s: abs(s * DIAMETER_PER_SIGMA - min_d)),)


def compute_candidate_features(
    volume: CTVolume,
    lungs: LungSegmentation,
    *,
    min_diameter_mm: float = 3.0,
    max_diameter_mm: float = 30.0,
    progress: ProgressCallback | None = None,
) -> tuple[list[dict[str, float]], NDArray[np.float64], NDArray[np.float64], IsoLungImage | None]:
    """Blob points with their features (steps 1-4 without scoring).

    Args:
        volume: The CT.
        lungs: Its lung segmentation (same grid).
        min_diameter_mm: Smallest nodule diameter of interest.
        max_diameter_mm: Largest nodule diameter of interest.
        progress: Optional ``callback(done, total)`` over analysed points.

    Returns:
        ``(features, centres_iso_zyx, diameters_mm, iso)``: one feature dict per point,
        refined centres ``(n, 3)`` on the iso grid, size estimates ``(n,)`` and the iso
        image (``None`` when the lung mask is empty).

    Raises:
        ConfigError: If the lung segmentation is on another grid than the volume.
    """
    if lungs.geometry != volume.geometry:
        raise ConfigError(
            "detect_candidates needs the lung segmentation of the same image grid: volume "
            f"{volume.shape} spacing {volume.spacing_zyx}, lungs {lungs.geometry.shape_zyx} "
            f"spacing {lungs.geometry.spacing_zyx}. Segment the lungs of this volume first."
        )
    iso = build_iso_lung_image(volume, lungs.mask, ISO_SPACING_MM)
    if iso is None:
        return [], np.zeros((0, 3)), np.zeros(0), None
    _warn_out_of_range(volume, iso)
    spacing = iso.geometry.spacing_zyx[0]
    scales = _scales_for(min_diameter_mm, max_diameter_mm)
    points = multiscale_blobs(iso.image, iso.mask, spacing, scales)
    soft_scales = tuple(sc for sc in SOFT_SCALES_MM if min(scales) <= sc <= max(scales))
    soft = None
    if soft_scales:
        clipped = np.minimum(iso.image, np.float32(SOFT_CLIP_HU))
        soft = multiscale_blobs(clipped, iso.mask, spacing, soft_scales)
        del clipped
    points, channel = select_points(points, spacing, soft=soft)
    features, centres, diameters = describe_points(iso, points, channel, progress)
    return features, centres, diameters, iso


def voxel_size_in_fitted_range(spacing_zyx: tuple[float, float, float]) -> bool:
    """True when slices and pixels lie in the ranges the packaged scorer was fitted on.

    Args:
        spacing_zyx: Voxel size in mm (z, y, x).

    Returns:
        ``FITTED_SLICE_SPACING_MM`` holds the slice spacing and ``FITTED_PIXEL_SPACING_MM``
        both pixel sizes.
    """
    dz, dy, dx = spacing_zyx
    lo, hi = FITTED_SLICE_SPACING_MM
    plo, phi = FITTED_PIXEL_SPACING_MM
    return lo <= dz <= hi and plo <= min(dy, dx) and max(dy, dx) <= phi


def _warn_out_of_range(volume: CTVolume, iso: IsoLungImage) -> None:
    lo, hi = FITTED_SLICE_SPACING_MM
    plo, phi = FITTED_PIXEL_SPACING_MM
    if not voxel_size_in_fitted_range(volume.spacing_zyx):
        log.warning(
            "Voxel size %s mm of %s lies outside the range the candidate scorer was fitted on "
            "(slices %g-%g mm, pixels %g-%g mm); candidate scores are less reliable.",
            tuple(round(v, 3) for v in volume.spacing_zyx),
            volume.source or "the volume",
            lo,
            hi,
            plo,
            phi,
        )
    height = iso.geometry.shape_zyx[0] * iso.geometry.spacing_zyx[0]
    if height < MIN_LUNG_HEIGHT_MM:
        log.warning(
            "The lungs of %s span only %.0f mm cranio-caudally; vessels cut by so thin a "
            "volume look like nodules, so candidate scores are unreliable.",
            volume.source or "the volume",
            height,
        )


def _select(points: BlobPoints, spacing_mm: float, limit: int) -> BlobPoints:
    l1 = np.abs(points.eig[:, 0]) + 1e-6
    shape_ok = (points.eig[:, 0] < 0) & (-points.eig[:, 1] / l1 > MIN_B2)
    points = points.take(np.nonzero(shape_ok)[0])
    order = np.argsort(-_priority(points), kind="stable")
    radius_vox = math.sqrt(3.0) * points.sigma_mm / spacing_mm
    keep = _suppress(points.zyx, radius_vox, order, limit, scale=points.sigma_mm)
    return points.take(np.asarray(keep, dtype=np.intp))


def select_points(
    points: BlobPoints,
    spacing_mm: float,
    limit: int = MAX_POINTS,
    *,
    soft: BlobPoints | None = None,
    soft_limit: int = SOFT_MAX_POINTS,
) -> tuple[BlobPoints, NDArray[np.int8]]:
    """Shape filter, ranking and non-maximum suppression of blob points (step 3).

    Args:
        points: All blob points of the main channel.
        spacing_mm: Iso voxel size.
        limit: Most main-channel points kept.
        soft: Points of the soft channel (selected separately, with their own budget;
            those within 2 mm of a kept main point are dropped as duplicates).
        soft_limit: Most soft-channel points kept.

    Returns:
        ``(points, channel)``: the kept points, main channel first (best-ranked first), and
        their channel (0 main, 1 soft).
    """
    main = _select(points, spacing_mm, limit)
    if soft is None or len(soft) == 0:
        return main, np.zeros(len(main), np.int8)
    extra = _select(soft, spacing_mm, soft_limit)
    if len(main) and len(extra):
        d2 = ((extra.zyx[:, None, :] - main.zyx[None, :, :]) ** 2).sum(axis=-1).min(axis=1)
        extra = extra.take(np.nonzero(d2 * spacing_mm**2 > 4.0)[0])
    both = BlobPoints.concat([main, extra])
    channel = np.concatenate([np.zeros(len(main), np.int8), np.ones(len(extra), np.int8)])
    return both, channel


def describe_points(
    iso: IsoLungImage,
    points: BlobPoints,
    channel: NDArray[np.int8] | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[list[dict[str, float]], NDArray[np.float64], NDArray[np.float64]]:
    """Features, refined centres (iso index) and diameters of blob points (step 4).

    Args:
        iso: The iso lung image.
        points: Points on its grid.
        channel: Channel of each point (0 main, 1 soft); all main by default.
        progress: Optional ``callback(done, total)``.

    Returns:
        ``(features, centres_zyx (n, 3), diameters_mm (n,))``.
    """
    spacing = iso.geometry.spacing_zyx[0]
    pleura, f = _pleura_distance(iso)
    context = scan_features(iso.image, iso.mask, iso.parenchyma_hu)
    pyramid: dict[int, NDArray[np.float32]] = {1: iso.image}
    features: list[dict[str, float]] = []
    centres = np.zeros((len(points), 3))
    diameters = np.zeros(len(points))
    total = len(points)
    for i in range(total):
        sigma = float(points.sigma_mm[i])
        # Large scales are analysed on the coarser pyramid level their blob was found on.
        level = level_for(sigma, spacing)
        if level not in pyramid:
            pyramid[level] = block_mean(iso.image, level)
        zyx_level = (points.zyx[i] - (level - 1) / 2.0) / level
        q = np.clip(np.rint(points.zyx[i] / f).astype(int), 0, np.asarray(pleura.shape) - 1)
        feats, centre, diameter = point_features(
            pyramid[level], zyx_level, sigma, spacing * level, float(pleura[tuple(q)])
        )
        feats.update(hessian_features(points, i))
        feats.update(context)
        feats["centre_minus_bright"] = feats["centre_hu"] - context["scan_bright_hu"]
        feats["soft_channel"] = float(channel[i]) if channel is not None else 0.0
        features.append(feats)
        centres[i] = centre * level + (level - 1) / 2.0
        diameters[i] = diameter
        if progress is not None and (i % 100 == 99 or i == total - 1):
            progress(i + 1, total)
    return features, centres, diameters


def _merge_duplicates(
    centres_mm: NDArray[np.float64], radii_mm: NDArray[np.float64], scores: NDArray[np.float64]
) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    return _suppress(centres_mm, np.maximum(radii_mm, 2.0), order, len(order))


def detect_candidates(
    volume: CTVolume,
    lungs: LungSegmentation,
    *,
    min_diameter_mm: float = 3.0,
    max_diameter_mm: float = 30.0,
    max_candidates: int = 300,
    scorer: CandidateScorer | None = None,
    progress: ProgressCallback | None = None,
) -> list[Candidate]:
    """Find nodule candidates inside the lungs, scored in [0, 1].

    Args:
        volume: The CT (any spacing).
        lungs: Its lung segmentation (from :func:`medsnowball.lung.segment_lungs`).
        min_diameter_mm: Smallest nodule diameter of interest (mm).
        max_diameter_mm: Largest nodule diameter of interest (mm).
        max_candidates: Most candidates returned.
        scorer: Score model; the packaged one by default.
        progress: Optional ``callback(done, total)`` over analysed points.

    Returns:
        Candidates sorted by decreasing score, centres in LPS mm of the input image and as
        fractional indices of its grid.

    Raises:
        ConfigError: If the arguments are invalid or the lungs belong to another grid.
    """
    if not 0 < min_diameter_mm <= max_diameter_mm:
        raise ConfigError(
            f"Expected 0 < min_diameter_mm <= max_diameter_mm, got {min_diameter_mm}, "
            f"{max_diameter_mm}."
        )
    if max_candidates < 0:
        raise ConfigError(f"max_candidates must be >= 0, got {max_candidates}.")
    scorer = scorer or CandidateScorer.default()
    features, centres, diameters, iso = compute_candidate_features(
        volume,
        lungs,
        min_diameter_mm=min_diameter_mm,
        max_diameter_mm=max_diameter_mm,
        progress=progress,
    )
    if iso is None or not features:
        return []
    scores = scorer.score_many(features)
    size_ok = (diameters >= 0.5 * min_diameter_mm) & (diameters <= 1.5 * max_diameter_mm)
    idx = np.nonzero(size_ok)[0]
    spacing = iso.geometry.spacing_zyx[0]
    keep = _merge_duplicates(centres[idx] * spacing, 0.5 * diameters[idx], scores[idx])
    idx = idx[np.asarray(keep, dtype=np.intp)][:max_candidates]
    world = iso.geometry.index_to_world(centres[idx])
    src_idx = volume.geometry.world_to_index(world)
    out = []
    for j, i in enumerate(idx):
        feats = dict(features[i])
        out.append(
            Candidate(
                center_lps=(float(world[j, 0]), float(world[j, 1]), float(world[j, 2])),
                center_zyx=(float(src_idx[j, 0]), float(src_idx[j, 1]), float(src_idx[j, 2])),
                score=float(scores[i]),
                diameter_mm=float(diameters[i]),
                features=feats,
                detector=DETECTOR_NAME,
            )
        )
    out.sort(key=lambda c: -c.score)
    return out


__all__ = [
    "DETECTOR_NAME",
    "compute_candidate_features",
    "describe_points",
    "detect_candidates",
    "select_points",
]
