"""Hard negatives: dependent atelectasis, emphysema, pleural plaques, scars, mucus plugs,
costal cartilage calcification (the usual false-positive sources of a nodule CAD)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medsnowball.validation.style_b.coarse import CoarseLung
from medsnowball.validation.style_b.layout import Layout
from medsnowball.validation.style_b.tissue import HU
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.trees import Segments
from medsnowball.validation.style_b.tubes import Grid, paint_tubes


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def dependent_atelectasis(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    lay: Layout,
    rng: np.random.Generator,
) -> None:
    """A band of higher density along the posterior pleura of the lower lungs (in place).

    Lung voxels within ``t`` mm of the posterior lung border (posterior half of the chest,
    lower 35-55 % of the lung height, ``t`` 2-8 mm fading upwards) are raised towards
    -250 HU, most strongly at the pleura.
    """
    top = lay.z_of_u(rng.uniform(0.35, 0.55))
    depth_mm = rng.uniform(2.0, 8.0)
    dy = grid.spacing[1]
    post = (grid.axis(1) > lay.yc - 0.1 * lay.b)[:, None]
    v = HU[T.ATELECTASIS]
    for k, z in enumerate(grid.axis(0)):
        if z > top:
            break
        lung = lungs[k] > 0
        if not lung.any():
            continue
        frac_h = 1.0 - max(0.0, (z - lay.z_low) / max(top - lay.z_low, 1.0))
        n = round(depth_mm * frac_h / dy)
        if n < 1:
            continue
        weight = np.zeros(lung.shape, dtype=np.float32)
        for j in range(n, 0, -1):
            edge = np.zeros_like(lung)
            edge[:-j] = ~lung[j:]
            edge[-j:] = True
            w = 1.0 - 0.75 * (j - 1) / n
            weight = np.where(lung & edge & post, np.float32(w), weight)
        sel = weight > 0
        if sel.any():
            sl = hu[k]
            sl[sel] += weight[sel] * (v - sl[sel])
            tk = tis[k]
            tk[sel & (weight > 0.5) & (tk == T.LUNG)] = T.ATELECTASIS


def emphysema(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    coarse: CoarseLung,
    lay: Layout,
    rng: np.random.Generator,
) -> int:
    """Centrilobular / paraseptal lucencies (< -950 HU), mostly in the upper lungs.

    Returns:
        Number of lucent patches painted.
    """
    n = int(rng.integers(20, 150))
    pts = np.concatenate([coarse.sample(s, n, rng) for s in (1, 2)])
    if pts.size == 0:
        return 0
    w = np.clip((pts[:, 0] - lay.z_low) / lay.height, 0.0, 1.0) ** 2
    keep = rng.uniform(size=len(pts)) < w
    pts = pts[keep]
    r = rng.uniform(1.5, 5.0, size=len(pts))
    paint_tubes(
        grid, hu, tis, pts, pts, r, r, HU[T.EMPHYSEMA], T.EMPHYSEMA, mode="min", within=lungs
    )
    return len(pts)


def pleural_plaques(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    lay: Layout,
    rng: np.random.Generator,
) -> int:
    """Pleural thickening and plaques on the posterolateral costal pleura (some calcified);
    their voxels leave the lung mask.

    Returns:
        Number of plaques.
    """
    n = int(rng.integers(1, 7))
    done = 0
    for _ in range(n):
        side = int(rng.integers(1, 3))
        u = rng.uniform(0.1, 0.7)
        z = lay.z_of_u(u)
        phi = (
            (np.pi / 2 + rng.uniform(0.3, 1.6))
            if side == 1
            else (np.pi / 2 - rng.uniform(0.3, 1.6))
        )
        rc = lay.cavity_scale(u) * float(
            lay.body_radius(np.array(phi)) - lay.wall_thickness(np.array(phi))
        )
        if rc <= 0:
            continue
        thick = rng.uniform(1.0, 2.5)
        c = np.array(
            [
                z,
                lay.yc + (rc + 0.2 * thick) * np.sin(phi),
                lay.xc + (rc + 0.2 * thick) * np.cos(phi),
            ]
        )
        tang = np.array([rng.uniform(-0.4, 0.4), np.cos(phi), -np.sin(phi)])
        tang = _unit(tang)
        half = rng.uniform(5.0, 15.0)
        calcified = rng.uniform() < 0.3
        val = HU[T.CALCIFICATION] if calcified else HU[T.PLAQUE]
        paint_tubes(
            grid,
            hu,
            tis,
            (c - half * tang)[None],
            (c + half * tang)[None],
            np.array([thick]),
            np.array([thick]),
            val,
            T.PLAQUE,
            mode="max",
            clear=lungs,
        )
        done += 1
    return done


def scars(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    coarse: CoarseLung,
    rng: np.random.Generator,
) -> int:
    """Linear dense strands (parenchymal bands, scars), often running to the pleura.

    Returns:
        Number of scars.
    """
    n = int(rng.integers(1, 5))
    starts = np.concatenate([coarse.sample(s, n, rng, min_dist_mm=8.0) for s in (1, 2)])
    if starts.size == 0:
        return 0
    starts = starts[rng.permutation(len(starts))[:n]]
    for s in starts:
        d = _unit(rng.normal(size=3) * np.array([0.5, 1.0, 1.0]))
        pts = [s]
        for _ in range(int(rng.integers(2, 5))):
            d = _unit(d + 0.35 * rng.normal(size=3))
            pts.append(pts[-1] + d * rng.uniform(6.0, 15.0))
        p = np.array(pts)
        r = rng.uniform(0.5, 1.3)
        rr = np.full(len(p) - 1, r)
        paint_tubes(grid, hu, tis, p[:-1], p[1:], rr, rr * 0.8, HU[T.SCAR], T.SCAR, within=lungs)
    return len(starts)


def mucus_plugs(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    lumens: Segments,
    rng: np.random.Generator,
) -> int:
    """Fill a few small airways and their descendants with mucus (branching dense tubes,
    tree-in-bud).

    Returns:
        Number of plugged segments.
    """
    small = np.flatnonzero((lumens.r1 > 0.5) & (lumens.r1 < 1.8) & (lumens.parent >= 0))
    if small.size == 0:
        return 0
    chosen = set(
        rng.choice(small, size=min(small.size, int(rng.integers(1, 4))), replace=False).tolist()
    )
    plugged = []
    for i in range(len(lumens)):  # parents come before children
        if i in chosen or int(lumens.parent[i]) in chosen:
            chosen.add(i)
            plugged.append(i)
    idx = np.array(plugged)
    paint_tubes(
        grid,
        hu,
        tis,
        lumens.p0[idx],
        lumens.p1[idx],
        lumens.r0[idx],
        lumens.r1[idx],
        HU[T.MUCUS],
        T.MUCUS,
        mode="max",
        within=lungs,
    )
    return len(idx)


__all__ = ["dependent_atelectasis", "emphysema", "mucus_plugs", "pleural_plaques", "scars"]
