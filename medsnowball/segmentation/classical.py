"""Training-free nodule segmentation: adaptive thresholds, region growing, vessel and wall cuts.

Per candidate, in a patch around it on a near-isotropic working grid
(:mod:`medsnowball.segmentation.patch`; thick slices are refined along z):

1. **Smooth** the HU patch lightly (Gaussian, ``smoothing_mm``) against noise.
2. **Where the nodule may lie**: the lung mask when one is given (it holds juxtapleural
   nodules; the chest wall lies outside it, so growth cannot leak into the wall). Without
   one, voxels below -400 HU closed with a ball larger than the expected nodule.
3. **Levels**: parenchyma level ``P`` and noise from lung voxels away from the candidate.
   The seed is the candidate centre, or, when that lies on parenchyma, the densest point
   of a nodule-scale smoothed image nearby. The seed level ``L`` is the median around it.
4. **Adaptive threshold** half-way between ``P`` and the nodule's attenuation: the 50 %
   partial-volume level, i.e. the true edge of a blurred object.

   - Solid core (``L`` above -350 HU): level ``max(L, 0 HU)``. If a low threshold (just
     above the parenchyma noise) grows a region whose attenuation mass exceeds the solid
     core's by more than ``ggn_excess``, there is ground glass around the core
     (part-solid): the threshold becomes half-way to that ground glass's level and the
     mask is ground glass plus core.
   - Ground glass at the seed: half-way to its level, refined once on the grown region.

5. **Region growing**: the 26-connected component of ``smoothed > threshold`` holding the
   seed, inside the lung and within ``max_diameter_mm / 2`` of the seed.
6. **Vessel cut**: opening with a ball of a fraction of the nodule's inscribed radius:
   vessels thinner than the ball vanish, the roundish nodule survives; a larger fraction is
   tried if the mask still reaches far from the seed, and a remaining leak is clipped
   (:func:`medsnowball.segmentation.steps.cut_vessels`).
7. Back to the **source grid** (exact: every ``f``-th working slice is a source slice) and a
   **partial-volume correction** of the volume
   (:mod:`medsnowball.segmentation.partial_volume`). If the mask touches the patch edge,
   the patch grows and the nodule is segmented again.

When nothing near the candidate rises above the parenchyma, the mask is the candidate's
sphere (``SegmentationDetails.kind == "fallback"``).
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import Candidate, LungSegmentation, NoduleSegmentation
from medsnowball.core.volume import CTVolume
from medsnowball.segmentation.morphology import ball
from medsnowball.segmentation.params import SegmentationDetails, SegmentationParams
from medsnowball.segmentation.partial_volume import correct_partial_volume
from medsnowball.segmentation.patch import Patch, extract_patch
from medsnowball.segmentation.steps import prepare, segment_patch

logger = logging.getLogger(__name__)

_Parts = tuple[NDArray[np.bool_], tuple[int, int, int]]


def _touches_open_border(mask: NDArray[np.bool_], patch: Patch) -> bool:
    for axis in range(3):
        first = np.take(mask, 0, axis=axis).any()
        last = np.take(mask, mask.shape[axis] - 1, axis=axis).any()
        lo_clip, hi_clip = patch.clipped[axis]
        if (first and not lo_clip) or (last and not hi_clip):
            return True
    return False


def _fallback(
    volume: CTVolume, center: NDArray[np.float64], d0: float
) -> tuple[NDArray[np.bool_], tuple[int, int, int]]:
    sp = volume.spacing_zyx
    r = max(d0 / 2.0, 0.5 * min(sp))
    lo = [max(0, int(np.floor(c - r / s))) for c, s in zip(center, sp, strict=True)]
    hi = [
        min(n, int(np.ceil(c + r / s)) + 1)
        for c, s, n in zip(center, sp, volume.shape, strict=True)
    ]
    shape = [b - a for a, b in zip(lo, hi, strict=True)]
    m = ball(shape, center - np.asarray(lo), r, sp)
    if not m.any():
        m = np.zeros(shape, dtype=bool)
        c = np.clip(np.rint(center - np.asarray(lo)).astype(int), 0, np.asarray(shape) - 1)
        m[tuple(c)] = True
    return m, (lo[0], lo[1], lo[2])


def _crop(mask: NDArray[np.bool_], lo: tuple[int, int, int]) -> _Parts:
    idx = np.argwhere(mask)
    a = idx.min(axis=0)
    b = idx.max(axis=0) + 1
    sub = mask[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
    return np.ascontiguousarray(sub), (lo[0] + int(a[0]), lo[1] + int(a[1]), lo[2] + int(a[2]))


def segment_nodule_detailed(
    volume: CTVolume,
    candidate: Candidate,
    lungs: LungSegmentation | None = None,
    *,
    max_diameter_mm: float = 40.0,
    params: SegmentationParams | None = None,
) -> tuple[NoduleSegmentation, SegmentationDetails]:
    """Like :func:`segment_nodule`, also returning how the mask was obtained.

    Args:
        volume: The CT.
        candidate: Candidate to segment (its ``center_zyx`` is the seed).
        lungs: Lung segmentation on the volume's grid, or ``None``.
        max_diameter_mm: Largest nodule extent considered (the mask stays within this
            diameter around the seed).
        params: Algorithm constants (defaults if ``None``).

    Returns:
        The mask and the details.

    Raises:
        ConfigError: If the candidate lies outside the volume or ``max_diameter_mm`` is not
            positive, or the lung labels do not match the volume's grid.
    """
    p = params or SegmentationParams()
    if not max_diameter_mm > 0:
        raise ConfigError(f"max_diameter_mm must be > 0, got {max_diameter_mm}.")
    center = np.asarray(candidate.center_zyx, dtype=np.float64)
    if not volume.geometry.contains_index(center):
        raise ConfigError(
            f"Candidate at index {tuple(center)} lies outside the volume {volume.shape} "
            f"of {volume.source!r}; expected an index on the volume's grid."
        )
    if lungs is not None and tuple(lungs.labels.shape) != tuple(volume.shape):
        raise ConfigError(
            f"Lung labels have shape {lungs.labels.shape}, the volume {volume.shape}; "
            "segment the lungs on the same CT."
        )
    d_cand = float(candidate.diameter_mm) if candidate.diameter_mm > 0 else p.default_diameter_mm
    d0 = float(np.clip(d_cand, 3.0, max_diameter_mm))
    max_half = max_diameter_mm / 2.0 + 6.0
    half = float(np.clip(0.75 * d0 + 7.0, 11.0, max_half))
    for _attempt in range(4):
        patch = extract_patch(volume, (float(center[0]), float(center[1]), float(center[2])), half)
        lungs_src = None
        if lungs is not None:
            lo, hi = patch.lo_zyx, patch.hi_zyx
            lungs_src = np.asarray(lungs.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] > 0)
        w = prepare(patch, lungs_src, center, d0, max_diameter_mm, p)
        res = segment_patch(w, p)
        if res.mask.any() and _touches_open_border(res.mask, patch) and half < max_half:
            half = min(max_half, half * 1.6)
            continue
        break
    f = patch.factor_z
    seed_w = w.seed
    seed_src = (
        patch.lo_zyx[0] + seed_w[0] / f,
        float(patch.lo_zyx[1] + seed_w[1]),
        float(patch.lo_zyx[2] + seed_w[2]),
    )
    kind = res.kind
    mask_src = patch.to_source(res.mask)
    if mask_src.any() and p.partial_volume:
        seed_s = (min(round(seed_w[0] / f), mask_src.shape[0] - 1), seed_w[1], seed_w[2])
        mask_src = correct_partial_volume(
            patch.hu[::f],
            w.smooth[::f],
            mask_src,
            w.lung[::f],
            threshold=res.threshold,
            parenchyma=w.parenchyma,
            level=res.level,
            spacing=volume.spacing_zyx,
            blur_sigma_mm=p.pv_blur_mm,
            seed=seed_s,
        )
    if not mask_src.any():
        logger.debug("nodule segmentation fell back to the candidate sphere")
        m, off = _fallback(volume, center, d0)
        kind = "fallback"
    else:
        m, off = _crop(mask_src, patch.lo_zyx)
    details = SegmentationDetails(
        kind=kind,
        threshold_hu=res.threshold,
        parenchyma_hu=w.parenchyma,
        noise_hu=w.noise,
        core_hu=res.core,
        ggn_hu=res.ggn,
        ggn_excess=res.ggn_excess,
        opening_mm=res.opening,
        leak_clipped=res.clipped,
        half_mm=half,
        factor_z=f,
        seed_zyx=seed_src,
    )
    return NoduleSegmentation(candidate=candidate, mask=m, offset_zyx=off), details


def segment_nodule(
    volume: CTVolume,
    candidate: Candidate,
    lungs: LungSegmentation | None = None,
    *,
    max_diameter_mm: float = 40.0,
) -> NoduleSegmentation:
    """Segment the nodule at a candidate (algorithm in the module doc).

    Args:
        volume: The CT.
        candidate: Candidate to segment (its ``center_zyx`` is the seed; its
            ``diameter_mm`` sets the patch size and the expected scale).
        lungs: Lung segmentation on the volume's grid, or ``None``.
        max_diameter_mm: Largest nodule extent considered.

    Returns:
        A non-empty boolean patch on the volume's grid with its offset.

    Raises:
        ConfigError: If the candidate lies outside the volume or the lung labels do not
            match it.
    """
    seg, _ = segment_nodule_detailed(volume, candidate, lungs, max_diameter_mm=max_diameter_mm)
    return seg


__all__ = [
    "SegmentationDetails",
    "SegmentationParams",
    "segment_nodule",
    "segment_nodule_detailed",
]
