"""Left/right lung assignment: mediastinal midline, separation of touching lungs, check.

Rule (documented in docs/cad.md):

1. **Midline.** The world x (LPS) of every low-density lung voxel is histogrammed in
   bins of at least ``MIDLINE_BIN_MM`` (a whole number of voxel pitches along world x),
   smoothed over about three times that width. The midline is the centre of the
   deepest valley in the middle 80 % of the lungs' x range, provided the valley holds at
   most ``VALLEY_DEPTH`` of the smaller of the two peaks on either side (the mediastinum
   between two lungs). Without such a valley (one lung, or no lung) the body's centroid
   is the midline and the scan is taken to hold a single lung region.
2. **Components.** A connected lung component with less than ``SPAN_FRACTION`` of its
   voxels on one side of the midline belongs wholly to its majority side (patient's right
   = smaller LPS x). With a valley (two lungs), a component spanning both sides is eroded
   in-plane one voxel at a time (up to ``MAX_EROSIONS``) until it falls apart into seeds
   that each lie on one side, with seeds on both sides; each voxel then takes the side of
   its nearest seed, provided that on each side of the midline at most
   ``MAX_MIDLINE_DISAGREEMENT`` of the component's voxels there take the other side (else
   erosion goes on). Should erosion never separate it, each voxel takes the side of the
   midline it lies on. Without a valley a spanning component is one lung (a single lung
   crossing the body's centre after a resection) and goes wholly to its majority side.
3. **Check and repair.** The split is implausible when one lung holds less than
   ``MIN_SIDE_RATIO`` of the other's voxels, or a lung's centroid lies on the wrong side of
   the midline. With a valley it is then repaired: every component is split at the midline
   instead (step 2 without erosion). The repair is kept when it makes the split plausible
   (flag ``lung_split_repaired``, info); otherwise the first split stays and
   ``lung_side_ratio_implausible`` (review) is raised: a lung may be missing (resection,
   collapse, cut by the field of view) or the split may be wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.core.findings import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from medsnowball.core.quality import SEVERITY_INFO, SEVERITY_REVIEW, QualityFlag
from medsnowball.core.volume import ImageGeometry

log = logging.getLogger(__name__)

SPAN_FRACTION = 0.10
MAX_EROSIONS = 10
#: A piece left after erosion must hold this fraction of the component to act as a seed.
MIN_SEED_FRACTION = 0.02
#: Histogram bin of the midline search (mm of world x).
MIDLINE_BIN_MM = 2.0
#: A valley holds at most this fraction of the smaller neighbouring peak.
VALLEY_DEPTH = 0.35
#: An erosion split is accepted when, on each side of the midline, at most this fraction
#: of the component's voxels there is labelled the other side.
MAX_MIDLINE_DISAGREEMENT = 0.03
#: Below this smaller/larger lung voxel ratio the split is implausible.
MIN_SIDE_RATIO = 0.25

CODE_SPLIT_REPAIRED = "lung_split_repaired"
CODE_SIDE_RATIO = "lung_side_ratio_implausible"


@dataclass(frozen=True)
class SideSplit:
    """Result of :func:`split_sides`.

    Attributes:
        labels: uint8 labels ``(z, y, x)``: 0 background, 1 right, 2 left.
        midline_x: World x (LPS mm) of the midline used.
        two_lungs: Whether the midline came from a valley between two lungs.
        flags: Quality flags of the check (step 3 of the module rule).
    """

    labels: NDArray[np.uint8]
    midline_x: float | None
    two_lungs: bool
    flags: tuple[QualityFlag, ...] = ()


def _x_coefficients(geometry: ImageGeometry) -> tuple[float, NDArray[np.float64]]:
    """World x (LPS) as ``x0 + coef @ (z, y, x)``: the x row of the (zyx-index) affine."""
    affine = geometry.affine
    return float(affine[0, 3]), np.asarray(affine[0, :3], dtype=np.float64)


def _world_x(
    geometry: ImageGeometry, coords: NDArray[np.floating] | NDArray[np.integer]
) -> NDArray[np.float64]:
    """World x (LPS) of voxel indices ``(n, 3)`` in ``(z, y, x)`` order."""
    x0, coef = _x_coefficients(geometry)
    return np.asarray(x0 + np.asarray(coords, dtype=np.float64) @ coef, dtype=np.float64)


def _x_field(
    geometry: ImageGeometry, shape: tuple[int, ...], offset: NDArray[np.intp] | None = None
) -> NDArray[np.float32]:
    """World x of every voxel of a box ``shape`` starting at index ``offset``, ``(z, y, x)``."""
    x0, coef = _x_coefficients(geometry)
    off = np.zeros(3, np.intp) if offset is None else offset
    axes = [
        ((np.arange(n, dtype=np.float64) + o) * c).astype(np.float32)
        for n, o, c in zip(shape, off, coef, strict=True)
    ]
    axes[0] += np.float32(x0)
    return axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]


def _centroid_x(mask: NDArray[np.bool_], geometry: ImageGeometry) -> float:
    """World x of the centroid of ``mask`` (world x is affine in the index)."""
    return float(_world_x(geometry, np.array(ndimage.center_of_mass(mask))[None])[0])


def estimate_midline(
    lungs: NDArray[np.bool_], body: NDArray[np.bool_], geometry: ImageGeometry
) -> tuple[float | None, bool]:
    """Mediastinal midline (step 1 of the module rule).

    Args:
        lungs: Boolean lung mask ``(z, y, x)`` (both lungs, not yet split).
        body: Boolean body mask ``(z, y, x)`` (centroid fallback).
        geometry: Grid of the arrays.

    Returns:
        ``(midline_x, two_lungs)``: world x in LPS mm (``None`` when neither lungs nor body
        exist) and whether it is a valley between two lungs.
    """
    ref = body if body.any() else lungs
    fallback = _centroid_x(ref, geometry) if ref.any() else None
    if not lungs.any():
        return fallback, False
    x = _x_field(geometry, lungs.shape)[lungs].astype(np.float64)
    # Bins of a whole number of voxel pitches along world x (no aliasing on axis-aligned
    # grids), at least MIDLINE_BIN_MM wide; smoothed over about three such widths.
    pitch = float(np.max(np.abs(geometry.direction[0]) * np.asarray(geometry.spacing_xyz)))
    width = pitch * max(1, int(np.ceil(MIDLINE_BIN_MM / pitch - 1e-6)))
    lo, hi = float(x.min()) - width / 2.0, float(x.max())
    nbins = int(np.floor((hi - lo) / width)) + 1
    if nbins < 5:
        return fallback, False
    counts = np.bincount(((x - lo) / width).astype(np.intp), minlength=nbins)
    kernel = max(3, round(3 * MIDLINE_BIN_MM / width) | 1)
    smooth = np.convolve(counts.astype(np.float64), np.ones(kernel) / kernel, mode="same")
    a, b = int(0.1 * nbins), int(np.ceil(0.9 * nbins))
    m = a + int(np.argmin(smooth[a:b]))
    left_peak = float(smooth[: m + 1].max())
    right_peak = float(smooth[m:].max())
    if smooth[m] > VALLEY_DEPTH * min(left_peak, right_peak):
        return fallback, False
    tol = smooth[m] + 0.02 * max(left_peak, right_peak)
    i, j = m, m
    while i > a and smooth[i - 1] <= tol:
        i -= 1
    while j < b - 1 and smooth[j + 1] <= tol:
        j += 1
    return lo + ((i + j) / 2.0 + 0.5) * width, True


def _disagreement(assigned: NDArray[np.uint8], midline_side: NDArray[np.uint8]) -> float:
    """Largest fraction, over the two sides of the midline, of voxels labelled the other side."""
    worst = 0.0
    for side in (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG):
        here = midline_side == side
        if here.any():
            worst = max(worst, float(np.mean(assigned[here] != side)))
    return worst


def _split_component(
    comp: NDArray[np.bool_],
    offset: NDArray[np.intp],
    geometry: ImageGeometry,
    midline_x: float,
) -> NDArray[np.uint8]:
    """Right/left labels for a component spanning both sides (arrays are a bbox crop)."""
    struct = ndimage.generate_binary_structure(3, 1)
    struct[0] = False
    struct[2] = False
    total = int(comp.sum())
    on_right = _x_field(geometry, comp.shape, offset) < midline_x
    midline_side = np.where(comp, np.where(on_right, LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG), 0).astype(
        np.uint8
    )
    eroded = comp
    for _ in range(MAX_EROSIONS):
        eroded = ndimage.binary_erosion(eroded, struct)
        if not eroded.any():
            break
        lab, n = ndimage.label(eroded)
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        n_right = np.bincount(lab.ravel(), weights=on_right.ravel(), minlength=n + 1)
        frac_right = n_right / np.maximum(sizes, 1)
        pieces = np.nonzero(sizes >= MIN_SEED_FRACTION * total)[0]
        pieces = pieces[pieces > 0]
        if np.any(np.minimum(frac_right[pieces], 1.0 - frac_right[pieces]) >= SPAN_FRACTION):
            continue  # a piece still joins both lungs: erode further
        side_of = np.zeros(n + 1, np.uint8)
        side_of[pieces] = np.where(frac_right[pieces] >= 0.5, LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG)
        if len(set(side_of[pieces].tolist())) < 2:
            continue
        seeds = side_of[lab]
        _, nearest = ndimage.distance_transform_edt(
            seeds == 0, sampling=geometry.spacing_zyx, return_indices=True
        )
        assigned = seeds[tuple(nearest)]
        if _disagreement(assigned[comp], midline_side[comp]) > MAX_MIDLINE_DISAGREEMENT:
            continue  # a seed still holds parts of both lungs: erode further
        return np.where(comp, assigned, 0).astype(np.uint8)
    log.info("Lungs could not be separated by erosion; splitting at the midline.")
    return midline_side


def assign_sides(
    lungs: NDArray[np.bool_],
    body: NDArray[np.bool_],
    geometry: ImageGeometry,
    *,
    midline_x: float | None = None,
    two_lungs: bool = True,
    erode: bool = True,
) -> NDArray[np.uint8]:
    """Label lung voxels as right (1) or left (2) (step 2 of the module rule).

    Args:
        lungs: Boolean lung mask ``(z, y, x)``.
        body: Boolean body mask ``(z, y, x)``; its centroid is the midline when
            ``midline_x`` is not given.
        geometry: Grid of the arrays.
        midline_x: World x (LPS mm) of the midline.
        two_lungs: Whether two lungs are expected (spanning components are split).
        erode: Separate spanning components by erosion (else: at the midline).

    Returns:
        uint8 labels ``(z, y, x)``: 0 background, 1 right, 2 left.
    """
    labels = np.zeros(lungs.shape, np.uint8)
    if not lungs.any():
        return labels
    if midline_x is None:
        ref = body if body.any() else lungs
        midline_x = _centroid_x(ref, geometry)
    lab, _n = ndimage.label(lungs)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        comp = lab[sl] == i
        offset = np.array([s.start for s in sl])
        on_right = _x_field(geometry, comp.shape, offset) < midline_x
        frac_right = float(np.count_nonzero(on_right & comp)) / float(np.count_nonzero(comp))
        if min(frac_right, 1.0 - frac_right) < SPAN_FRACTION or not two_lungs:
            labels[sl][comp] = LABEL_RIGHT_LUNG if frac_right >= 0.5 else LABEL_LEFT_LUNG
        elif erode:
            split = _split_component(comp, offset, geometry, midline_x)
            labels[sl][comp] = split[comp]
        else:
            labels[sl][comp] = np.where(on_right, LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG)[comp]
    return labels


def _problem(labels: NDArray[np.uint8], geometry: ImageGeometry, midline_x: float) -> str:
    """Why a split is implausible (step 3), ``""`` when it is plausible."""
    right = labels == LABEL_RIGHT_LUNG
    left = labels == LABEL_LEFT_LUNG
    n_right, n_left = int(np.count_nonzero(right)), int(np.count_nonzero(left))
    if min(n_right, n_left) == 0:
        return f"only the {'right' if n_right else 'left'} lung was found"
    ratio = min(n_right, n_left) / max(n_right, n_left)
    if ratio < MIN_SIDE_RATIO:
        small = "right" if n_right < n_left else "left"
        return f"the {small} lung holds only {ratio:.0%} of the other lung's volume"
    x_right = _centroid_x(right, geometry)
    x_left = _centroid_x(left, geometry)
    if x_right >= midline_x or x_left <= midline_x:
        return "a lung's centre lies on the wrong side of the mediastinal midline"
    return ""


def split_sides(
    lungs: NDArray[np.bool_], body: NDArray[np.bool_], geometry: ImageGeometry
) -> SideSplit:
    """Midline, right/left labels and their check (the whole module rule).

    Args:
        lungs: Boolean lung mask ``(z, y, x)``.
        body: Boolean body mask ``(z, y, x)``.
        geometry: Grid of the arrays.

    Returns:
        Labels, midline and quality flags.
    """
    midline_x, two_lungs = estimate_midline(lungs, body, geometry)
    if midline_x is None or not lungs.any():
        return SideSplit(np.zeros(lungs.shape, np.uint8), midline_x, two_lungs)
    labels = assign_sides(lungs, body, geometry, midline_x=midline_x, two_lungs=two_lungs)
    problem = _problem(labels, geometry, midline_x)
    if not problem:
        return SideSplit(labels, midline_x, two_lungs)
    flags: list[QualityFlag] = []
    if two_lungs:
        repaired = assign_sides(
            lungs, body, geometry, midline_x=midline_x, two_lungs=True, erode=False
        )
        still = _problem(repaired, geometry, midline_x)
        if not still:
            log.info("Left/right split repaired at the midline x=%.1f mm (%s).", midline_x, problem)
            flags.append(
                QualityFlag(
                    CODE_SPLIT_REPAIRED,
                    f"The left/right lung split was implausible ({problem}) and was redone "
                    f"at the mediastinal midline (x = {midline_x:.1f} mm LPS).",
                    SEVERITY_INFO,
                )
            )
            labels, problem = repaired, still
    if problem:
        flags.append(
            QualityFlag(
                CODE_SIDE_RATIO,
                f"Implausible left/right lungs: {problem}. A lung may be missing (resected, "
                "collapsed, outside the image) or the split failed, so lung volumes and "
                "nodule sides need review.",
                SEVERITY_REVIEW,
            )
        )
    return SideSplit(labels, midline_x, two_lungs, tuple(flags))


__all__ = [
    "CODE_SIDE_RATIO",
    "CODE_SPLIT_REPAIRED",
    "MIN_SIDE_RATIO",
    "SideSplit",
    "assign_sides",
    "estimate_midline",
    "split_sides",
]
