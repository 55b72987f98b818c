"""Pulmonary vessel and bronchial trees grown by recursive territory partition.

Model (independent of :mod:`medsnowball.synth`'s angle-driven branching): every branch
owns a *territory*, a set of random points of the lung (lobe) it supplies. A branch runs
from its parent's end a random fraction of the way towards its territory's centroid, then
the territory is cut in two across its principal axis at a random quantile, and each half
gets a child. Radii follow Murray's law with the flow proportional to the territory size,
``r_child = r_parent * (n_child / n_parent) ** (1/3)`` (so ``r^3`` is conserved), so the
trees taper from the hilum to sub-millimetre twigs that end at the territory points, near
the pleura, with branch points everywhere and segments at every angle. Lobes get separate
subtrees so vessels rarely cross the fissures.

Bronchi run beside the arteries (bronchovascular bundles): each artery of radius
>= ``BRONCHUS_MIN_ARTERY_MM`` gets an airway of lumen radius 0.8x the artery's, offset
sideways by the two radii plus a gap, the offset direction carried from parent to child.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BRONCHUS_MIN_ARTERY_MM = 0.9


@dataclass(frozen=True)
class Segments:
    """Tapered tube segments (world mm, (z, y, x)).

    Attributes:
        p0: ``(n, 3)`` start points.
        p1: ``(n, 3)`` end points.
        r0: ``(n,)`` start radii.
        r1: ``(n,)`` end radii.
        parent: ``(n,)`` index of the parent segment (-1 for a root).
    """

    p0: NDArray[np.float64]
    p1: NDArray[np.float64]
    r0: NDArray[np.float64]
    r1: NDArray[np.float64]
    parent: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.r0.size)


class _Builder:
    def __init__(self) -> None:
        self.p0: list[NDArray[np.float64]] = []
        self.p1: list[NDArray[np.float64]] = []
        self.r0: list[float] = []
        self.r1: list[float] = []
        self.parent: list[int] = []

    def add(
        self, a: NDArray[np.float64], b: NDArray[np.float64], ra: float, rb: float, par: int
    ) -> int:
        self.p0.append(a)
        self.p1.append(b)
        self.r0.append(ra)
        self.r1.append(rb)
        self.parent.append(par)
        return len(self.r0) - 1

    def build(self) -> Segments:
        if not self.r0:
            z3 = np.zeros((0, 3))
            return Segments(z3, z3.copy(), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
        return Segments(
            np.array(self.p0),
            np.array(self.p1),
            np.array(self.r0),
            np.array(self.r1),
            np.array(self.parent, dtype=np.int64),
        )


def _perp(d: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    v = rng.normal(size=3)
    v -= (v @ d) * d
    return v / (np.linalg.norm(v) + 1e-12)


def grow_territory_tree(
    root_start: NDArray[np.float64],
    root_end: NDArray[np.float64],
    root_radius: float,
    points: NDArray[np.float64],
    groups: NDArray[np.int64],
    rng: np.random.Generator,
    *,
    min_radius: float = 0.35,
    tortuosity: float = 0.06,
) -> Segments:
    """Grow one tree from a hilar root segment into its territory points.

    Args:
        root_start: World ``(3,)`` start of the (mediastinal) root segment.
        root_end: World ``(3,)`` hilum point where the tree enters the lung.
        root_radius: Radius (mm) of the root segment.
        points: ``(n, 3)`` territory points (world mm) of the whole tree.
        groups: ``(n,)`` first-level territory ids (lobes).
        rng: Random stream.
        min_radius: Twigs stop at this radius.
        tortuosity: Sideways bend of a segment's midpoint, as a fraction of its length.

    Returns:
        The segments; index 0 is the root.
    """
    b = _Builder()
    b.add(root_start, root_end, root_radius, root_radius, -1)
    n_all = max(1, len(points))
    stack: list[tuple[NDArray[np.float64], NDArray[np.float64], float, int]] = []
    for g in np.unique(groups):
        sub = points[groups == g]
        stack.append((root_end, sub, root_radius * (len(sub) / n_all) ** (1 / 3), 0))
    while stack:
        s, pts, r, par = stack.pop()
        n = len(pts)
        c = pts.mean(axis=0)
        if n == 1 or r < min_radius:
            b.add(s, c, r, max(0.75 * r, 0.6 * min_radius), par)
            continue
        vec = c - s
        dist = float(np.linalg.norm(vec))
        frac = rng.uniform(0.3, 0.55) if dist > 4.0 else 1.0
        e = s + frac * vec
        seg_len = frac * dist
        if r > 1.0 and seg_len > 6.0 and tortuosity > 0:
            d = vec / (dist + 1e-12)
            m = 0.5 * (s + e) + _perp(d, rng) * rng.uniform(-tortuosity, tortuosity) * seg_len
            par = b.add(s, m, r, 0.985 * r, par)
            s, r = m, 0.985 * r
        seg = b.add(s, e, r, 0.97 * r, par)
        q = pts - c
        _w, v = np.linalg.eigh(q.T @ q)
        proj = q @ v[:, -1]
        kth = min(n - 1, max(0, int(rng.uniform(0.3, 0.7) * n)))
        cut = np.partition(proj, kth)[kth]
        left = proj <= cut
        if left.all() or not left.any():
            left = np.zeros(n, dtype=bool)
            left[: n // 2] = True
        for part in (pts[left], pts[~left]):
            stack.append((e, part, 0.97 * r * (len(part) / n) ** (1 / 3), seg))
    return b.build()


def bronchi_beside(
    arteries: Segments,
    carina: NDArray[np.float64],
    rng: np.random.Generator,
    *,
    min_artery_mm: float = BRONCHUS_MIN_ARTERY_MM,
) -> tuple[Segments, NDArray[np.float64]]:
    """Airways accompanying the arteries, plus the main bronchus from the carina.

    Args:
        arteries: An arterial tree from :func:`grow_territory_tree` (root first, parents
            before children).
        carina: World ``(3,)`` carina point (start of the main bronchus).
        rng: Random stream.
        min_artery_mm: Arteries thinner than this get no airway.

    Returns:
        ``(lumens, wall_mm)``: lumen segments (index 0 the main bronchus) and the wall
        thickness of each.
    """
    b = _Builder()
    walls: list[float] = []
    n = len(arteries)
    offs = np.zeros((n, 3))
    bend = np.zeros((n, 3))
    bid = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        ra0, ra1 = float(arteries.r0[i]), float(arteries.r1[i])
        if ra1 < min_artery_mm and i > 0:
            continue
        d = arteries.p1[i] - arteries.p0[i]
        d /= np.linalg.norm(d) + 1e-12
        par = int(arteries.parent[i])
        if par < 0 or bid[par] < 0:
            o = _perp(d, rng)
        else:
            o = offs[par] - (offs[par] @ d) * d
            nrm = np.linalg.norm(o)
            o = o / nrm if nrm > 1e-6 else _perp(d, rng)
        offs[i] = o
        rl0, rl1 = 0.8 * ra0, 0.8 * ra1
        w1 = max(0.3, 0.12 * rl1 + 0.25)
        end = arteries.p1[i] + o * (ra1 + rl1 + w1 + 0.4)
        if i == 0:
            bid[i] = b.add(carina, end, rl1, rl1, -1)
            walls.append(w1)
        else:
            start = (
                bend[par]
                if par >= 0 and bid[par] >= 0
                else arteries.p0[i] + o * (ra0 + rl0 + w1 + 0.4)
            )
            bid[i] = b.add(start, end, rl0, rl1, int(bid[par]) if par >= 0 else -1)
            walls.append(w1)
        bend[i] = end
    return b.build(), np.array(walls)


__all__ = ["BRONCHUS_MIN_ARTERY_MM", "Segments", "bronchi_beside", "grow_territory_tree"]
