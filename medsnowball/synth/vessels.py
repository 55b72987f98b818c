"""Pulmonary vessel trees: random branching tubes grown from the hila inside each lung.

Each tree starts with a few trunks (radius about 4.5 mm in an adult-size phantom) and
branches asymmetrically (a continuing branch about 0.86x the parent's radius, a side
branch about 0.6x at 35-70 degrees) down to ``r_min_mm`` (0.5 mm). Segments that would
leave their lung are re-aimed or dropped, so trees fill the lungs; branches cross each
other at all angles, so some cross-sections look like round blobs.

Vessels are drawn with an anisotropic anti-aliased edge (partial volume) into the HU
volume, and labelled in the tissue volume (``LUNG_VESSEL`` for radius >= 1.5 mm,
``SMALL_VESSEL`` below).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.synth.anatomy import Anatomy
from medsnowball.synth.mediastinum import HilumRoots
from medsnowball.synth.shapes import Grid, capsule_sdf
from medsnowball.synth.tissues import LUNG_HU, Tissue

LARGE_VESSEL_MM = 1.5
_MAX_SEGMENTS = 20000


@dataclass(frozen=True)
class VesselTree:
    """All vessel segments of a phantom (world mm, (z, y, x) order).

    Attributes:
        p0: (n, 3) start points.
        p1: (n, 3) end points.
        r0: (n,) radius at the start.
        r1: (n,) radius at the end.
        side: (n,) 1 right, 2 left.
    """

    p0: NDArray[np.float64]
    p1: NDArray[np.float64]
    r0: NDArray[np.float64]
    r1: NDArray[np.float64]
    side: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.r0.size)


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return v / (np.linalg.norm(v) + 1e-12)


def _turn(d: NDArray[np.float64], angle: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """Rotate unit vector ``d`` by ``angle`` radians towards a random perpendicular."""
    r = rng.normal(size=3)
    perp = _unit(r - np.dot(r, d) * d)
    return _unit(np.cos(angle) * d + np.sin(angle) * perp)


def _inside(lungs: NDArray[np.uint8], grid: Grid, pts_zyx: NDArray[np.float64], side: int) -> bool:
    idx = np.rint(grid.to_index(pts_zyx)).astype(int)
    shape = np.asarray(grid.shape_zyx)
    if np.any(idx < 0) or np.any(idx >= shape):
        return False
    return bool(np.all(lungs[idx[:, 0], idx[:, 1], idx[:, 2]] == side))


_N_TRUNKS = {"artery": 10, "vein": 7}


def _trunk_directions(
    n: int, lateral_sign: float, rng: np.random.Generator
) -> list[NDArray[np.float64]]:
    """``n`` random unit directions (z, y, x) spread over the lateral hemisphere.

    Stratified in cranio-caudal angle so that apex, mid lung and base all get trunks.
    """
    out = []
    for i in range(n):
        zc = -0.95 + 1.9 * (i + rng.uniform(0.1, 0.9)) / n  # cos of the polar angle
        az = rng.uniform(-0.5 * np.pi, 0.5 * np.pi)  # 0 = straight lateral
        rxy = np.sqrt(max(0.0, 1.0 - zc * zc))
        out.append(_unit(np.array([zc, rxy * np.sin(az), lateral_sign * rxy * np.cos(az)])))
    return out


def grow_vessel_trees(
    anat: Anatomy,
    lungs: NDArray[np.uint8],
    roots: HilumRoots,
    rng: np.random.Generator,
    density: float = 1.0,
    r_min_mm: float = 0.5,
) -> VesselTree:
    """Grow arterial and venous trees in both lungs.

    Args:
        anat: Anatomy parameters.
        lungs: uint8 lung labels ``(z, y, x)`` (1 right, 2 left).
        roots: Hilar start points.
        rng: Random generator (vessel stream).
        density: Multiplies the branching probability (0: no trees).
        r_min_mm: Smallest vessel radius drawn.

    Returns:
        The segments, in growth order (thick before thin within a trunk).
    """
    grid = anat.grid
    k = anat.k
    p0s: list[NDArray[np.float64]] = []
    p1s: list[NDArray[np.float64]] = []
    r0s: list[float] = []
    r1s: list[float] = []
    sides: list[int] = []
    if density <= 0:
        empty = np.zeros((0, 3))
        return VesselTree(empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8))
    p_side = min(1.0, 0.9 * density)
    p_extra = max(0.0, min(1.0, 0.45 * density))
    r_trunk = max(4.5 * k, 2.0)
    stack: list[
        tuple[NDArray[np.float64], NDArray[np.float64], float, int, NDArray[np.float64], int]
    ]
    for side, sgn in ((1, 1.0), (2, -1.0)):
        for root, kind in ((roots.artery[side], "artery"), (roots.vein[side], "vein")):
            stack = []
            for dd in _trunk_directions(_N_TRUNKS[kind], -sgn, rng):
                r = r_trunk * rng.uniform(0.75, 1.1)
                stack.append((root.copy(), dd, r, 0, root, side))
            queue = deque(stack)
            while queue and len(r0s) < _MAX_SEGMENTS:
                p, d, r, depth, origin, sd = queue.popleft()
                length = float(np.clip(r * rng.uniform(4.0, 8.0), 2.5, 40.0 * k))
                if depth == 0:
                    length = max(length, 30.0 * k)
                placed = None
                for attempt in range(6):
                    dd = d if attempt == 0 else _turn(d, rng.uniform(0.2, 1.2), rng)
                    ln = length * (1.0, 1.0, 1.0, 0.6, 0.6, 0.35)[attempt]
                    p1 = p + dd * ln
                    ts = np.array([0.6, 1.0]) if depth == 0 else np.array([0.33, 0.66, 1.0])
                    pts = p[None, :] + ts[:, None] * (p1 - p)[None, :]
                    if _inside(lungs, grid, pts, sd):
                        placed = (p1, dd)
                        break
                if placed is None:
                    continue
                p1, dd = placed
                r_end = r * 0.96
                p0s.append(p)
                p1s.append(p1)
                r0s.append(r)
                r1s.append(r_end)
                sides.append(sd)
                outward = _unit(p1 - origin)
                r_c = r_end * rng.uniform(0.84, 0.93)
                if r_c >= r_min_mm:
                    dc = _unit(_turn(dd, rng.uniform(0.1, 0.4), rng) + 0.25 * outward)
                    queue.append((p1, dc, r_c, depth + 1, origin, sd))
                n_side = int(rng.uniform() < p_side) + int(rng.uniform() < p_extra)
                for _ in range(n_side):
                    r_s = r_end * rng.uniform(0.45, 0.7)
                    if r_s >= r_min_mm:
                        ds = _unit(_turn(dd, rng.uniform(0.6, 1.2), rng) + 0.2 * outward)
                        queue.append((p1, ds, r_s, depth + 1, origin, sd))
    if not r0s:
        empty = np.zeros((0, 3))
        return VesselTree(empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8))
    return VesselTree(
        np.array(p0s), np.array(p1s), np.array(r0s), np.array(r1s), np.array(sides, dtype=np.int8)
    )


def draw_vessels(
    grid: Grid,
    tree: VesselTree,
    hu: NDArray[np.float32],
    tissue: NDArray[np.uint8],
    vessel_hu: float,
) -> None:
    """Paint the vessel tree into the HU and tissue volumes (in place).

    Vessels are painted over lung and mediastinal fat only, with an anti-aliased edge of
    one voxel measured along the surface normal (so thick slices get partial volume).

    Args:
        grid: Voxel grid.
        tree: Segments to draw.
        hu: float32 HU volume ``(z, y, x)``.
        tissue: uint8 tissue classes ``(z, y, x)``.
        vessel_hu: HU of blood in the pulmonary vessels.
    """
    sp = np.asarray(grid.spacing_zyx, dtype=np.float32)
    paintable = np.zeros(256, dtype=bool)
    for cls in (Tissue.LUNG, Tissue.MEDIASTINAL_FAT, Tissue.SMALL_VESSEL, Tissue.LUNG_VESSEL):
        paintable[int(cls)] = True
    amp = np.float32(vessel_hu - LUNG_HU)
    for i in range(len(tree)):
        res = capsule_sdf(
            grid,
            tree.p0[i],
            tree.p1[i],
            tree.r0[i],
            tree.r1[i],
            pad=float(sp.max()),
            with_normal_size=True,
        )
        if res is None:
            continue
        box, sdf, h = res  # type: ignore[misc]
        frac = np.clip(np.float32(0.5) - sdf / h, 0.0, 1.0)
        tb = tissue[box]
        ok = paintable[tb]
        val = np.float32(LUNG_HU) + frac * amp
        hb = hu[box]
        np.maximum(hb, np.where(ok, val, np.float32(-2000)), out=hb)
        inside = ok & (sdf < 0) & (tb != Tissue.MEDIASTINAL_FAT)
        if tree.r0[i] >= LARGE_VESSEL_MM:
            tb[inside] = Tissue.LUNG_VESSEL
        else:
            tb[inside & (tb == Tissue.LUNG)] = Tissue.SMALL_VESSEL


__all__ = ["LARGE_VESSEL_MM", "VesselTree", "draw_vessels", "grow_vessel_trees"]
