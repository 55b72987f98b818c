"""The steps of the training-free segmentation inside one working-grid patch.

See :mod:`medsnowball.segmentation.classical` for the overall algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from medsnowball.segmentation.morphology import (
    Spacing,
    ball,
    closing,
    component_at,
    edt_inside,
    edt_outside,
)
from medsnowball.segmentation.params import SegmentationParams
from medsnowball.segmentation.patch import Patch, upsample_z_nearest

Index3 = tuple[int, int, int]


@dataclass
class Work:
    """State of one segmentation in one patch (working grid).

    Attributes:
        patch: The patch.
        smooth: Smoothed HU.
        lung: Where the nodule may lie.
        seed: Seed voxel.
        d0: Expected diameter (mm).
        limit: Ball of ``max_diameter / 2`` around the seed.
        parenchyma: Parenchyma level.
        noise: Noise sigma of the smoothed parenchyma.
    """

    patch: Patch
    smooth: NDArray[np.float32]
    lung: NDArray[np.bool_]
    seed: Index3
    d0: float
    limit: NDArray[np.bool_]
    parenchyma: float
    noise: float

    @property
    def spacing(self) -> Spacing:
        """Working-grid voxel size."""
        return self.patch.spacing_zyx


@dataclass
class PatchResult:
    """Outcome of :func:`segment_patch`."""

    mask: NDArray[np.bool_]
    kind: str
    threshold: float
    core: float
    level: float
    ggn: float | None = None
    ggn_excess: float | None = None
    opening: float = 0.0
    clipped: bool = False


def sigma_vox(sigma_mm: float, spacing: Spacing) -> tuple[float, float, float]:
    """A sigma in mm as voxels per axis."""
    return (sigma_mm / spacing[0], sigma_mm / spacing[1], sigma_mm / spacing[2])


def prepare(
    patch: Patch,
    lungs_src: NDArray[np.bool_] | None,
    center_src: NDArray[np.float64],
    d0: float,
    max_diameter_mm: float,
    p: SegmentationParams,
) -> Work:
    """Smooth the patch, build the local lung, estimate levels and place the seed.

    Args:
        patch: Working-grid patch.
        lungs_src: Lung mask on the patch's source box, or ``None``.
        center_src: Candidate centre, fractional source index.
        d0: Expected nodule diameter (mm).
        max_diameter_mm: Largest nodule extent.
        p: Parameters.

    Returns:
        The work state.
    """
    sp = patch.spacing_zyx
    smooth = ndi.gaussian_filter(patch.hu, sigma_vox(p.smoothing_mm, sp), truncate=3.0)
    if lungs_src is not None:
        lung = upsample_z_nearest(lungs_src, patch.factor_z)
    else:
        radius = float(np.clip(0.6 * d0 + 2.0, 4.0, 15.0))
        lung = closing(smooth < p.air_split_hu, radius, sp)
    c = patch.source_to_work(center_src)
    c_idx = tuple(int(v) for v in np.clip(np.rint(c), 0, np.asarray(smooth.shape) - 1))
    seed: Index3 = (c_idx[0], c_idx[1], c_idx[2])
    # parenchyma level and noise from lung voxels away from the candidate
    away = ~ball(smooth.shape, c, d0 / 2.0 + 3.0, sp)
    paren = smooth[lung & away & (smooth < p.parenchyma_max_hu)]
    if paren.size >= 50:
        par = float(np.median(paren))
        noise = float(1.4826 * np.median(np.abs(paren - par)))
    else:
        par, noise = -850.0, 20.0
    # keep the detector's centre when it lies on something denser than parenchyma;
    # otherwise move to the densest nodule-scale blob nearby
    core = ball(smooth.shape, c, max(0.7, d0 / 8.0), sp)
    # at coarse spacing the small ball can miss every voxel centre: use the nearest voxel
    here = float(np.median(smooth[core])) if core.any() else float(smooth[c_idx])
    if here - par < max(p.min_contrast_hu, p.noise_k * noise):
        coarse = ndi.gaussian_filter(patch.hu, sigma_vox(max(1.0, d0 / 6.0), sp), truncate=2.5)
        search = ball(coarse.shape, c, max(1.5, 0.3 * d0), sp)
        flat = np.where(search, coarse, -np.inf)
        s = np.unravel_index(int(np.argmax(flat)), flat.shape)
        seed = (int(s[0]), int(s[1]), int(s[2]))
    limit = ball(smooth.shape, seed, max_diameter_mm / 2.0, sp)
    return Work(patch, smooth, lung, seed, d0, limit, par, noise)


def _bbox(mask: NDArray[np.bool_], pad: list[int]) -> tuple[slice, slice, slice]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + np.asarray(pad), mask.shape)
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def restore_local(
    comp: NDArray[np.bool_], opened: NDArray[np.bool_], r: float, spacing: Spacing
) -> NDArray[np.bool_]:
    """Give back what an opening removed locally (corners, lobulations), not vessels.

    The opening also rounds off a nodule's own corners (where it meets the pleura) and
    bumps. Each connected piece of ``comp`` the opening removed is given back when it lies
    entirely within ``r`` (plus a voxel) of the opened mask; vessels and slivers along the
    pleura run farther away and stay removed.

    Args:
        comp: Component before the opening.
        opened: Opened component.
        r: Opening radius (mm).
        spacing: Voxel size (mm).

    Returns:
        ``opened`` plus the local pieces.
    """
    removed = comp & ~opened
    if not removed.any() or not opened.any():
        return opened
    lab, n = ndi.label(removed, structure=np.ones((3, 3, 3), dtype=bool))
    dist = edt_outside(opened, spacing)
    far = ndi.maximum(dist, lab, index=np.arange(1, n + 1))
    reach = r + float(max(spacing))
    keep = np.flatnonzero(np.asarray(far) <= reach) + 1
    if keep.size == 0:
        return opened
    return opened | np.isin(lab, keep)


def cut_vessels(
    comp: NDArray[np.bool_], seed: Index3, d0: float, spacing: Spacing, p: SegmentationParams
) -> tuple[NDArray[np.bool_], float, bool]:
    """Cut attached vessels off a nodule component by an adaptive opening.

    The opening radius is ``opening_fraction`` of the inscribed radius near the seed; if
    the result still reaches farther than ``compact_factor`` inscribed radii from the seed
    (a vessel thicker than the ball), ``opening_fraction_max`` is tried, and a remaining
    leak is clipped to that distance.

    Args:
        comp: Connected component holding the seed.
        seed: Seed voxel.
        d0: Expected diameter (mm).
        spacing: Voxel size (mm).
        p: Parameters.

    Returns:
        ``(mask, opening radius, clipped)``.
    """
    if not comp.any():
        return comp, 0.0, False
    inside = edt_inside(comp, spacing)
    near = ball(comp.shape, seed, max(d0 / 2.0, 2.0), spacing)
    r_in = float(inside[near & comp].max(initial=0.0))
    half_diag = 0.5 * float(np.sqrt(np.sum(np.square(spacing))))
    reach = p.compact_factor * r_in + 2.0 * half_diag
    grids = np.ogrid[tuple(slice(0, n) for n in comp.shape)]
    d2_seed = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, seed, spacing, strict=True))
    out, r = comp, 0.0
    for frac in (p.opening_fraction, p.opening_fraction_max):
        r = float(np.clip(frac * r_in, p.min_opening_mm, p.max_opening_mm))
        opened = None
        for _ in range(4):
            core = component_at(inside > r, seed, spacing, search_mm=r_in + d0 / 2.0)
            if core.any():
                # + half a voxel diagonal: a discrete core lies up to that far inside the
                # continuous one, so a plain opening would peel a layer off the nodule
                grown = (edt_outside(core, spacing) <= r + half_diag) & comp
                grown = restore_local(comp, grown, r, spacing)
                opened = component_at(grown, seed, spacing, search_mm=d0 / 2.0 + r)
                if opened.any():
                    break
            r *= 0.7
        if opened is None or not opened.any():
            return comp, 0.0, False
        out = opened
        if float(np.max(np.where(out, d2_seed, 0.0))) <= reach**2:
            return out, r, False
    clipped = component_at(out & (d2_seed <= reach**2), seed, spacing, search_mm=d0 / 2.0)
    return (clipped if clipped.any() else out), r, True


def foreign_dense(
    w: Work, p: SegmentationParams, own: NDArray[np.bool_] | None = None
) -> NDArray[np.bool_]:
    """Solid structures that reach beyond the nodule (vessels), with their blurred rim.

    Components denser than ``ggn_max_hu`` that extend farther than ``0.75 d0`` (at least
    4 mm) from the seed are vessels or wall next to a ground-glass nodule, not its solid
    core; excluding them (and a rim of ``pv_blur_mm + half a voxel``) before growing at a
    ground-glass threshold keeps the growth out of them.

    Args:
        w: Work state.
        p: Parameters.
        own: The nodule's own solid core (already separated from its vessels): its voxels
            and their neighbours are never foreign.

    Returns:
        Boolean working-grid mask to exclude.
    """
    dense = (w.smooth > p.ggn_max_hu) & w.lung
    if own is not None and own.any():
        dense &= ~ndi.binary_dilation(own, structure=np.ones((3, 3, 3), dtype=bool))
    lab, n = ndi.label(dense, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return dense
    reach = max(0.75 * w.d0, 4.0)
    grids = np.ogrid[tuple(slice(0, k) for k in dense.shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, w.seed, w.spacing, strict=True))
    far_labels = np.unique(lab[(lab > 0) & (d2 > reach**2)])
    foreign = np.isin(lab, far_labels[far_labels > 0])
    if not foreign.any():
        return foreign
    return edt_outside(foreign, w.spacing) <= p.pv_blur_mm + 0.5 * max(w.spacing)


def grow(
    threshold: float,
    w: Work,
    p: SegmentationParams,
    exclude: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.bool_], float, bool]:
    """Seed component of ``smooth > threshold`` in the local lung, vessels cut.

    Args:
        threshold: HU threshold on the smoothed patch.
        w: Work state.
        p: Parameters.
        exclude: Voxels the nodule may not contain (see :func:`foreign_dense`).

    Returns:
        ``(mask, opening radius, leak clipped)``.
    """
    cand = (w.smooth > threshold) & w.lung & w.limit
    if exclude is not None:
        cand &= ~exclude
    comp = component_at(cand, w.seed, w.spacing, search_mm=max(1.0, w.d0 / 3.0))
    if not comp.any():
        return comp, 0.0, False
    pad = [int(np.ceil(2.0 / s)) + 1 for s in w.spacing]
    box = _bbox(comp, pad)
    seed = tuple(int(c - b.start) for c, b in zip(w.seed, box, strict=True))
    if not comp[box][seed]:
        seed_in = np.argwhere(comp[box])
        d2 = np.sum(((seed_in - np.asarray(seed)) * np.asarray(w.spacing)) ** 2, axis=1)
        seed = tuple(int(v) for v in seed_in[int(np.argmin(d2))])
    sub, r, clipped = cut_vessels(comp[box], (seed[0], seed[1], seed[2]), w.d0, w.spacing, p)
    out = np.zeros(comp.shape, dtype=bool)
    out[box] = sub
    return out, r, clipped


def mass_voxels(
    hu: NDArray[np.float32], region: NDArray[np.bool_], parenchyma: float, level: float
) -> float:
    """Attenuation above parenchyma in ``region``, in voxels of ``level`` (capped at 1 each)."""
    span = max(level - parenchyma, 1.0)
    return float(np.minimum((hu[region] - parenchyma) / span, 1.0).sum())


def ring_levels(w: Work, solid: NDArray[np.bool_], p: SegmentationParams) -> list[float]:
    """Median HU above parenchyma in in-plane rings around a solid core.

    Measured on the source slices where the core is at least 60 % of its largest area
    (the caps are blurred along z), in the lung, ignoring voxels denser than
    ``ggn_max_hu`` and the blurred rim of dense structures other than the core (vessels
    crossing a ring). Ground glass around a core keeps the rings high; the blurred edge of
    a solid nodule decays within ~1.5 mm.

    Returns:
        One value per ring of ``p.ggn_rings_mm`` (0 where a ring is empty).
    """
    f = w.patch.factor_z
    # dense structures other than the core (vessels the opening cut off) and their
    # blurred rim do not count: their halo is not ground glass
    others = (w.smooth > p.ggn_max_hu) & ~ndi.binary_dilation(
        solid, structure=np.ones((3, 3, 3), dtype=bool)
    )
    near_others = edt_outside(others, w.spacing) <= p.pv_blur_mm + 0.5 * max(w.spacing)
    core = solid[::f]
    hu = w.patch.hu[::f]
    lung = w.lung[::f] & ~near_others[::f]
    areas = core.reshape(core.shape[0], -1).sum(axis=1)
    if areas.max(initial=0) == 0:
        return [0.0] * len(p.ggn_rings_mm)
    values: list[list[NDArray[np.float32]]] = [[] for _ in p.ggn_rings_mm]
    for k in np.flatnonzero(areas >= 0.6 * areas.max()):
        dist = ndi.distance_transform_edt(~core[k], sampling=w.spacing[1:])
        ok = lung[k] & (hu[k] < p.ggn_max_hu)
        for i, (a, b) in enumerate(p.ggn_rings_mm):
            values[i].append(hu[k][ok & (dist >= a) & (dist <= b)])
    out = []
    for v in values:
        flat = np.concatenate(v) if v else np.zeros(0, dtype=np.float32)
        out.append(float(np.median(flat)) - w.parenchyma if flat.size else 0.0)
    return out


def segment_patch(w: Work, p: SegmentationParams) -> PatchResult:
    """Choose the threshold(s) and grow the nodule (see the classical module doc).

    Args:
        w: Prepared work state.
        p: Parameters.

    Returns:
        The working-grid mask and how it was obtained.
    """
    sm, par, noise = w.smooth, w.parenchyma, w.noise
    near = ball(sm.shape, w.seed, max(1.0, w.d0 / 4.0), w.spacing)
    core = float(np.median(sm[near]))
    if core - par < max(p.min_contrast_hu, p.noise_k * noise):
        return PatchResult(np.zeros(sm.shape, dtype=bool), "fallback", par, core, core)
    t_low = par + min(max(p.low_margin_hu, p.noise_k * noise), 0.5 * (core - par))
    if core >= p.solid_split_hu:
        level = max(core, p.solid_level_floor_hu)
        t_solid = par + 0.5 * (level - par)
        solid, r_s, clip_s = grow(t_solid, w, p)
        low, _, _ = grow(t_low, w, p)
        rings = ring_levels(w, solid, p)
        # ring heights relative to the solid contrast (a calcified nodule's rim is brighter)
        scale = 880.0 / max(level - par, 1.0)
        excess = (rings[1] + 2.0 * rings[2]) * scale
        ggn: float | None = None
        if rings[2] * scale >= p.ggn_ring_hu or excess >= p.ggn_ring_score:
            outside = low & ~solid
            rim = edt_outside(solid, w.spacing) <= 1.5 * p.pv_blur_mm + 0.5 * max(w.spacing)
            # vessels crossing the shell are not ground glass
            glass = outside & (sm < p.ggn_max_hu)
            shell = glass & ~rim
            vals = sm[shell] if shell.sum() >= 10 else sm[glass]
            if vals.size:
                # the shell also holds the ground glass's own blurred outer edge: read
                # its plateau from the upper part of the distribution
                lvl = float(np.percentile(vals, p.ggn_level_percentile))
                if lvl < p.ggn_max_hu:
                    ggn = lvl
        if ggn is None:
            return PatchResult(solid, "solid", t_solid, core, level, None, excess, r_s, clip_s)
        t_ggn = par + 0.5 * (ggn - par)
        region, r, clip = grow(t_ggn, w, p, exclude=foreign_dense(w, p, own=solid))
        return PatchResult(region | solid, "subsolid", t_ggn, core, ggn, ggn, excess, r, clip)
    # ground glass at the seed: grow at its half level, refine the level once. A dense
    # seed voxel is a small solid core: it is the nodule's own, never a foreign vessel.
    own = None
    seed_hu = float(sm[w.seed])
    if seed_hu > p.ggn_max_hu:
        own, _, _ = grow(par + 0.5 * (max(seed_hu, p.solid_level_floor_hu) - par), w, p)
    foreign = foreign_dense(w, p, own=own)
    t1 = par + 0.5 * (core - par)
    first, r, clip = grow(t1, w, p, exclude=foreign)
    if own is not None:
        first |= own
    if not first.any():
        return PatchResult(first, "ground_glass", t1, core, core, None, None, r, clip)
    inner = first & (edt_inside(first, w.spacing) > min(w.spacing) * 1.01)
    glass = first & (sm < p.ggn_max_hu)  # the level of the ground glass, not of a core
    inner &= glass
    vals = sm[inner] if inner.sum() >= 8 else sm[glass] if glass.any() else sm[first]
    ggn = float(np.median(vals))
    t_g = par + 0.5 * (ggn - par)
    region, r2, clip2 = grow(t_g, w, p, exclude=foreign)
    if own is not None:
        region |= own
    if not region.any():
        return PatchResult(first, "ground_glass", t1, core, core, ggn, None, r, clip)
    return PatchResult(region, "ground_glass", t_g, core, ggn, ggn, None, r2, clip2)


__all__ = [
    "PatchResult",
    "Work",
    "cut_vessels",
    "grow",
    "mass_voxels",
    "prepare",
    "segment_patch",
    "sigma_vox",
]
