"""Painting the pulmonary trees (arteries, veins, bronchi) and cartilage calcification."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medsnowball.validation.style_b.anatomy import SliceFrame, rib_polylines
from medsnowball.validation.style_b.coarse import CoarseLung
from medsnowball.validation.style_b.fissures import Fissures
from medsnowball.validation.style_b.layout import Layout
from medsnowball.validation.style_b.mediastinum import Hila
from medsnowball.validation.style_b.tissue import HU
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.trees import Segments, bronchi_beside, grow_territory_tree
from medsnowball.validation.style_b.tubes import Grid, paint_tubes


def paint_trees(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    coarse: CoarseLung,
    fis: Fissures,
    hila: Hila,
    lay: Layout,
    rng: np.random.Generator,
) -> tuple[list[tuple[Segments, int]], Segments]:
    """Grow and paint the arteries, veins and bronchi of both lungs (in place).

    Args:
        grid: The voxel grid.
        hu: float32 ``(z, y, x)`` HU volume.
        tis: uint8 ``(z, y, x)`` tissue labels.
        lungs: uint8 ``(z, y, x)`` lung labels (hilar roots and main bronchi are removed).
        coarse: Coarse lung map (territory sampling).
        fis: Fissures (lobes = first-level territories).
        hila: Tree roots.
        lay: Body layout.
        rng: Tree random stream.

    Returns:
        ``(vessels, lumens)``: the vessel trees with their side (1 right, 2 left; segment 0
        of each is its mediastinal root), and the airway lumens of one side (for mucus
        plugs; parents index into it).
    """
    r_leaf = max(0.35, 0.45 * min(grid.spacing))
    r_root = 8.0 * lay.k
    n_pts = int(min(2500, (r_root / r_leaf) ** 3))
    vessels: list[tuple[Segments, int]] = []
    lumen_list: list[tuple[Segments, NDArray[np.float64]]] = []
    kinds: list[T] = []
    for side in (1, 2):
        for kind in ("artery", "vein"):
            pts = coarse.sample(side, n_pts, rng, min_dist_mm=2.5)
            if len(pts) < 4:
                continue
            start = hila.pa_start if kind == "artery" else hila.atrium
            end = hila.artery[side] if kind == "artery" else hila.vein[side]
            tree = grow_territory_tree(
                start,
                end,
                r_root * (1.0 if kind == "artery" else 0.9),
                pts,
                fis.lobe(pts, side),
                rng,
            )
            vessels.append((tree, side))
            kinds.append(T.PULMONARY_ARTERY if kind == "artery" else T.VEIN)
            if kind == "artery":
                lumen_list.append(bronchi_beside(tree, hila.carina, rng))
    # airway walls, then lumens (main bronchi replace, intrapulmonary airways blend)
    wall_label, lumen_label = T.AIRWAY_WALL, T.AIRWAY_LUMEN
    for lum, wall in lumen_list:
        r0, r1 = lum.r0 + wall, lum.r1 + wall
        _paint_root_then_branches(grid, hu, tis, lungs, lum, r0, r1, wall_label, wall_label, "max")
    for lum, _ in lumen_list:
        _paint_root_then_branches(
            grid, hu, tis, lungs, lum, lum.r0, lum.r1, lumen_label, lumen_label, "min"
        )
    for (tree, _), root_label in zip(vessels, kinds, strict=True):
        lab = np.where(tree.r0[1:] >= 1.5, int(T.LUNG_VESSEL), int(T.SMALL_VESSEL))
        _paint_root_then_branches(
            grid,
            hu,
            tis,
            lungs,
            tree,
            tree.r0,
            tree.r1,
            root_label,
            lab,
            "max",
            branch_hu=HU[T.LUNG_VESSEL],
        )
    # mucus plugs follow one side's airway tree (parents index into it)
    lumens = lumen_list[int(rng.integers(len(lumen_list)))][0] if lumen_list else _empty_segments()
    return vessels, lumens


def _empty_segments() -> Segments:
    z3 = np.zeros((0, 3))
    return Segments(z3, z3.copy(), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))


def _paint_root_then_branches(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    seg: Segments,
    r0: NDArray[np.float64],
    r1: NDArray[np.float64],
    root_label: T,
    branch_label: int | NDArray[np.int64],
    branch_mode: str,
    branch_hu: float | None = None,
) -> None:
    """Paint a tree's root segment (outside the lungs: replaces what is there, clears the
    lung label) and its intrapulmonary branches (blended with ``branch_mode``, inside the
    lungs only). ``r0``/``r1`` are the radii to paint (lumen, or lumen plus wall)."""
    paint_tubes(
        grid,
        hu,
        tis,
        seg.p0[:1],
        seg.p1[:1],
        r0[:1],
        r1[:1],
        HU[root_label],
        root_label,
        mode="over",
        clear=lungs,
    )
    paint_tubes(
        grid,
        hu,
        tis,
        seg.p0[1:],
        seg.p1[1:],
        r0[1:],
        r1[1:],
        HU[root_label] if branch_hu is None else branch_hu,
        branch_label,
        mode=branch_mode,
        within=lungs,
    )


def concat_intrapulmonary(trees: list[Segments]) -> Segments:
    """Intrapulmonary segments (roots dropped) of several trees."""
    if not trees:
        return _empty_segments()
    return Segments(
        np.concatenate([t.p0[1:] for t in trees]),
        np.concatenate([t.p1[1:] for t in trees]),
        np.concatenate([t.r0[1:] for t in trees]),
        np.concatenate([t.r1[1:] for t in trees]),
        np.concatenate([t.parent[1:] for t in trees]),
    )


def calcify_cartilage(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lay: Layout,
    frame: SliceFrame,
    rng: np.random.Generator,
) -> int:
    """Dense spots (costal cartilage calcification) on the anterior rib ends."""
    n = 0
    for pts, cart in rib_polylines(grid, lay, frame):
        if not cart or rng.uniform() < 0.5:
            continue
        m = int(rng.integers(1, 4))
        j = rng.integers(0, len(pts) - 1, size=m)
        tt = rng.uniform(size=(m, 1))
        c = pts[j] + tt * (pts[j + 1] - pts[j])
        r = rng.uniform(1.0, 2.5, size=m)
        paint_tubes(grid, hu, tis, c, c, r, r, HU[T.CALCIFICATION], T.CALCIFICATION, mode="max")
        n += m
    return n


__all__ = ["calcify_cartilage", "concat_intrapulmonary", "paint_trees"]
