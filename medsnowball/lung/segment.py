"""Lung segmentation: body, airways removed, right/left, holes filled, juxtapleural kept.

The classical backend needs no model weights. It runs on a coarse working grid (block means
of about 1.5 x 1.5 x 2 mm, see :mod:`medsnowball.lung.grid`) and maps the result back to
the input grid with trilinear interpolation. Steps (the rule of each is documented in
docs/cad.md and in the module that implements it):

1. body mask (:mod:`medsnowball.lung.body`);
2. low-density voxels (< -350 HU after block averaging) inside the body, deeper than
   ``SKIN_MARGIN_MM`` below its outline (not the skin folds or the mattress under the back);
3. trachea and main bronchi removed (:mod:`medsnowball.lung.airway`);
4. lung-like components kept: median HU above -945 (pure-air bowel or stomach gas and an
   isolated trachea read about -1000) and at least 10 % of the largest such component;
5. right/left assignment at the mediastinal midline, with separation of touching lungs and
   a check (and repair) of the split (:mod:`medsnowball.lung.split`);
6. per lung: holes filled slice by slice, then a closing with a ``CLOSING_MM`` ball (inside
   the body, never into bone) so that vessels at the hilum and juxtapleural nodules, which
   a threshold cuts out with the chest wall, lie inside the mask; compact additions of a
   wider closing (``WIDE_CLOSING_MM``: large juxtapleural nodules); holes filled again;
7. quality flags for lungs cut by the field of view or the scan range
   (:mod:`medsnowball.lung.coverage`) and for a repaired or implausible split.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, LungSegmentation
from medsnowball.core.quality import QualityFlag
from medsnowball.core.volume import CTVolume, ImageGeometry
from medsnowball.lung.airway import large_airways
from medsnowball.lung.body import GAS_MEDIAN_HU as BODY_GAS_MEDIAN_HU
from medsnowball.lung.body import body_mask
from medsnowball.lung.coverage import coverage_flags
from medsnowball.lung.grid import WorkingGrid
from medsnowball.lung.morphology import closing_edt, fill_holes_per_slice
from medsnowball.lung.split import SideSplit, split_sides
from medsnowball.lung.zones import lung_zone_bounds

log = logging.getLogger(__name__)

#: Working-grid voxel size (z, y, x) in mm.
WORK_SPACING_ZYX = (2.0, 1.5, 1.5)
#: Lung parenchyma threshold (HU, block-averaged). -350 keeps the partial-volume rim of real
#: lungs (lungmask reference slices within 2.2 % / 4.0 %; -400 lost 3.5 % / 5.4 %); see
#: docs/cad.md for its effect on the phantom CPM.
LUNG_HU = -350.0
#: Depth (mm) of the body's outer rim in which no lung is sought (in-plane erosion by
#: ``round(SKIN_MARGIN_MM / pixel)`` steps of the 4-neighbour cross).
SKIN_MARGIN_MM = 4.5
#: Components whose median HU is below this are gas, not lung.
GAS_MEDIAN_HU = BODY_GAS_MEDIAN_HU
#: A lung component must hold this fraction of the largest lung-like component.
MIN_COMPONENT_FRACTION = 0.10
#: Radius (mm) of the closing that brings juxtapleural nodules and hilar vessels inside.
CLOSING_MM = 12.0
#: Radius (mm) of the wider closing whose compact additions (large juxtapleural nodules)
#: are accepted, and the size limits of such an addition.
WIDE_CLOSING_MM = 20.0
WIDE_MAX_EXTENT_MM = 40.0
WIDE_MAX_ML = 20.0
#: Bone (cortical shell, then filled): the closing never adds it to the lungs.
BONE_HU = 350.0
#: Clip range applied before averaging (scanner padding such as -2048 becomes air).
HU_CLIP = (-1024.0, 3071.0)

BACKENDS = ("classical", "lungmask")


def _lung_components(low: NDArray[np.bool_], hu: NDArray[np.floating]) -> NDArray[np.bool_]:
    lab, n = ndimage.label(low)
    if n == 0:
        return low
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    objects = ndimage.find_objects(lab)
    keep: list[int] = []
    largest = 0
    # Largest first; a component smaller than a fraction of the largest lung-like one can
    # never be kept, so the (costly) medians of the many small ones are never computed.
    for i in np.argsort(sizes)[::-1]:
        if sizes[i] == 0 or sizes[i] < MIN_COMPONENT_FRACTION * largest:
            break
        sl = objects[i - 1]
        if sl is None:
            continue
        median = float(np.median(hu[sl][lab[sl] == i]))
        if median <= GAS_MEDIAN_HU:
            continue
        largest = max(largest, int(sizes[i]))
        keep.append(int(i))
    if not keep:
        log.info("No lung-like low-density region found (only gas).")
        return np.zeros_like(low)
    return np.isin(lab, keep)


def _compact_parts(
    extra: NDArray[np.bool_], spacing: tuple[float, float, float]
) -> NDArray[np.bool_]:
    """Components of ``extra`` small and compact enough to be a nodule's dent."""
    lab, n = ndimage.label(extra)
    if n == 0:
        return extra
    keep = []
    voxel_ml = float(np.prod(spacing)) / 1000.0
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        extent = max((s.stop - s.start) * d for s, d in zip(sl, spacing, strict=True))
        volume = np.count_nonzero(lab[sl] == i) * voxel_ml
        if extent <= WIDE_MAX_EXTENT_MM and volume <= WIDE_MAX_ML:
            keep.append(i)
    return np.isin(lab, keep)


def _close_side(
    side: NDArray[np.bool_], allowed: NDArray[np.bool_], spacing: tuple[float, float, float]
) -> NDArray[np.bool_]:
    filled = fill_holes_per_slice(side)
    closed = (closing_edt(filled, CLOSING_MM, spacing) & allowed) | filled
    wide = closing_edt(filled, WIDE_CLOSING_MM, spacing) & allowed & ~closed
    closed |= _compact_parts(wide, spacing)
    return fill_holes_per_slice(closed)


def classical_labels(
    hu: NDArray[np.floating], geometry: ImageGeometry, *, fill_holes: bool = True
) -> tuple[NDArray[np.uint8], NDArray[np.bool_], SideSplit]:
    """Lung labels and body mask computed on the grid of ``hu`` (normally a working grid).

    Args:
        hu: HU array ``(z, y, x)`` (clipped, block-averaged).
        geometry: Grid of ``hu``.
        fill_holes: Fill vessels/nodules and close the pleural surface (step 6).

    Returns:
        ``(labels, body, split)``: uint8 labels (0, 1 right, 2 left), the boolean body mask
        and the right/left split (midline, flags of its check).
    """
    spacing = geometry.spacing_zyx
    body = body_mask(hu, spacing)
    # Lungs lie inside the chest wall: the body's outer rim (skin folds, the mattress under
    # the back) is never lung. Beyond the image border the body is taken to go on.
    cross = np.zeros((3, 3, 3), bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    steps = max(1, round(SKIN_MARGIN_MM / min(spacing[1], spacing[2])))
    inner = ndimage.binary_erosion(body, structure=cross, iterations=steps, border_value=1)
    low = (hu < LUNG_HU) & inner
    airway = large_airways(hu, low, body, geometry)
    low &= ~airway
    lungs = _lung_components(low, hu)
    split = split_sides(lungs, body, geometry)
    labels = split.labels
    if not fill_holes:
        return labels, body, split
    right = labels == LABEL_RIGHT_LUNG
    left = labels == LABEL_LEFT_LUNG
    bone = ndimage.binary_dilation(fill_holes_per_slice(hu > BONE_HU))
    allowed = body & ~airway & ~bone
    right_c = _close_side(right, allowed & ~left, spacing)
    left_c = _close_side(left, allowed & ~right, spacing)
    both = right_c & left_c
    out = np.zeros(hu.shape, np.uint8)
    out[right_c & ~both] = LABEL_RIGHT_LUNG
    out[left_c & ~both] = LABEL_LEFT_LUNG
    return out, body, split


def _segment_classical(volume: CTVolume, fill_holes: bool) -> LungSegmentation:
    grid = WorkingGrid.create(volume.geometry, WORK_SPACING_ZYX)
    # Clipped before averaging: padding (-2048) must not drag scan-circle edges below air.
    hu = grid.downsample(volume.array, clip=HU_CLIP)
    labels_w, body_w, split = classical_labels(hu, grid.geometry, fill_holes=fill_holes)
    labels = grid.upsample_labels(labels_w)
    body = grid.upsample_nearest(body_w)
    labels[~body] = 0
    return make_segmentation(
        labels, volume.geometry, body, midline_x_lps=split.midline_x, quality=split.flags
    )


def make_segmentation(
    labels: NDArray[np.uint8],
    geometry: ImageGeometry,
    body: NDArray[np.bool_] | None = None,
    *,
    midline_x_lps: float | None = None,
    quality: tuple[QualityFlag, ...] = (),
    check_coverage: bool = True,
) -> LungSegmentation:
    """Wrap labels into a :class:`LungSegmentation` with volumes, zone bounds and flags.

    Args:
        labels: uint8 labels ``(z, y, x)`` on ``geometry``.
        geometry: Grid of the labels.
        body: Optional body mask.
        midline_x_lps: World x (LPS mm) of the mediastinal midline, if known.
        quality: Flags already raised (right/left split).
        check_coverage: Add the field-of-view and scan-range flags
            (:mod:`medsnowball.lung.coverage`).

    Returns:
        The segmentation.
    """
    ml = geometry.voxel_volume_mm3 / 1000.0
    if check_coverage:
        quality = tuple(quality) + coverage_flags(labels, geometry)
    return LungSegmentation(
        labels=labels,
        geometry=geometry,
        right_ml=float(np.count_nonzero(labels == LABEL_RIGHT_LUNG) * ml),
        left_ml=float(np.count_nonzero(labels == LABEL_LEFT_LUNG) * ml),
        body=body,
        zone_bounds_z=lung_zone_bounds(labels, geometry),
        midline_x_lps=midline_x_lps,
        quality=tuple(quality),
    )


def segment_lungs(
    volume: CTVolume, *, backend: str = "classical", fill_holes: bool = True
) -> LungSegmentation:
    """Segment the right and left lungs of a CT volume.

    Args:
        volume: The CT (any spacing; 2-slice volumes work).
        backend: ``"classical"`` (default, no weights) or ``"lungmask"`` (needs the optional
            ``lungmask`` package and its cached weights).
        fill_holes: Fill vessels and nodules and keep juxtapleural nodules inside (classical
            backend); ``False`` gives the low-density parenchyma only.

    Returns:
        Labels on the input grid (0 outside, 1 right, 2 left), volumes in ml, the body mask
        and the zone boundaries.

    Raises:
        ConfigError: On an unknown backend.
        MissingDependencyError: If ``backend="lungmask"`` and lungmask or its weights are
            not available.
    """
    if backend == "classical":
        return _segment_classical(volume, fill_holes)
    if backend == "lungmask":
        from medsnowball.lung.lungmask_backend import segment_with_lungmask

        return segment_with_lungmask(volume)
    raise ConfigError(f"Lung segmentation backend must be one of {BACKENDS}, got {backend!r}.")


__all__ = ["BACKENDS", "classical_labels", "make_segmentation", "segment_lungs"]
