"""Nodule shapes, HU patterns and placement (parenchymal, juxtapleural, juxtavascular).

A nodule is a randomly rotated ellipsoid (axis ratios 0.8-1.25) whose radius varies with
direction (smooth lobulation bumps). Its mask is scaled so that its voxel count equals the
volume of a sphere of the specified diameter (exactly, up to one voxel), counting only
voxels inside the chosen lung. Its HU field has an anti-aliased edge; the truth mask is
the set of voxels whose partial-volume fraction is >= 0.5.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.synth.shapes import Box, Grid
from medsnowball.synth.specs import NoduleSpec
from medsnowball.synth.tissues import CHEST_WALL, LUNG_HU, Tissue
from medsnowball.synth.vessels import VesselTree

log = logging.getLogger(__name__)

#: A parenchymal nodule's mask stays within this many radii of its placement centre,
#: and the lung extends at least 5 mm beyond that ball.
PARENCHYMAL_REACH = 1.3

_WALL = np.zeros(256, dtype=bool)
for _t in CHEST_WALL:
    _WALL[int(_t)] = True
_VESSEL = np.zeros(256, dtype=bool)
_VESSEL[int(Tissue.LUNG_VESSEL)] = True
_VESSEL[int(Tissue.SMALL_VESSEL)] = True


@dataclass(frozen=True)
class PlacedNodule:
    """A nodule drawn into the volumes.

    Attributes:
        spec: The requested nodule.
        side: 1 right, 2 left.
        box: Slices of its bounding box.
        mask: bool mask over the box.
        mean_hu: Pre-blur mean HU over the mask.
        solid_diameter_mm: Solid-component diameter.
    """

    spec: NoduleSpec
    side: int
    box: Box
    mask: NDArray[np.bool_]
    mean_hu: float
    solid_diameter_mm: float


class _Shape:
    """Lobulated ellipsoid evaluated on a box: ``ratio = r / R(direction)``."""

    def __init__(
        self,
        grid: Grid,
        center_zyx: NDArray[np.float64],
        radius: float,
        rng: np.random.Generator,
        lobulation: float,
    ) -> None:
        axes = np.exp(rng.uniform(-0.2, 0.2, size=3))
        axes /= np.prod(axes) ** (1.0 / 3.0)
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        n_bumps = int(rng.integers(3, 8))
        bumps = rng.normal(size=(n_bumps, 3))
        bumps /= np.linalg.norm(bumps, axis=1, keepdims=True)
        amps = rng.uniform(0.3, 1.0, size=n_bumps) * lobulation
        kappa = rng.uniform(3.0, 8.0, size=n_bumps)
        reach = radius * float(axes.max()) * (1.0 + float(amps.sum())) * 1.6 + max(grid.spacing_zyx)
        c = np.asarray(center_zyx, dtype=np.float64)
        box = grid.box(c - reach, c + reach)
        if box is None:
            raise ValueError("nodule box outside the grid")
        self.box = box
        z, y, x = grid.box_axes(box)
        dz, dy, dx = z - np.float32(c[0]), y - np.float32(c[1]), x - np.float32(c[2])
        m = (rot / axes[None, :]).T.astype(np.float32)  # world offset -> scaled local frame
        lz = m[0, 0] * dz + m[0, 1] * dy + m[0, 2] * dx
        ly = m[1, 0] * dz + m[1, 1] * dy + m[1, 2] * dx
        lx = m[2, 0] * dz + m[2, 1] * dy + m[2, 2] * dx
        q = np.sqrt(lz * lz + ly * ly + lx * lx) + np.float32(1e-6)
        rfac = np.ones(q.shape, dtype=np.float32)
        for b, a, kk in zip(bumps, amps, kappa, strict=True):
            cosang = (lz * b[0] + ly * b[1] + lx * b[2]) / q
            rfac += np.float32(a) * np.exp(np.float32(kk) * (cosang - 1.0))
        self.ratio = (q / (np.float32(radius) * rfac)).astype(np.float32)
        dist = np.sqrt(dz * dz + dy * dy + dx * dx) + np.float32(1e-6)
        sp = np.asarray(grid.spacing_zyx, dtype=np.float32)
        h = np.sqrt((dz * sp[0]) ** 2 + (dy * sp[1]) ** 2 + (dx * sp[2]) ** 2) / dist
        # ratio changes by about h / (radius * rfac) per voxel along the normal
        self.ratio_per_voxel = np.maximum(h, np.float32(sp.min())) / (np.float32(radius) * rfac)

    def fit(self, allowed: NDArray[np.bool_], n_voxels: int) -> float:
        """Ratio threshold that selects exactly ``n_voxels`` allowed voxels (smallest ratios)."""
        vals = self.ratio[allowed]
        n = int(np.clip(n_voxels, 1, vals.size))
        if n >= vals.size:
            return float(vals.max()) + 1e-3
        part = np.partition(vals, [n - 1, n])
        return float(0.5 * (part[n - 1] + part[n]))

    def fraction(self, threshold: float) -> NDArray[np.float32]:
        """Partial-volume fraction (0-1) of each box voxel for a ratio threshold."""
        f = np.float32(0.5) + (np.float32(threshold) - self.ratio) / self.ratio_per_voxel
        return np.clip(f, 0.0, 1.0)


def _ball(grid: Grid, box: Box, c: NDArray[np.float64], radius: float) -> NDArray[np.bool_]:
    z, y, x = grid.box_axes(box)
    return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius * radius


class NodulePlacer:
    """Finds places for nodules and draws them.

    Args:
        grid: Voxel grid.
        hu: float32 HU volume (modified in place).
        tissue: uint8 tissue classes (modified in place).
        lungs: uint8 lung labels.
        nodule_labels: uint16 instance labels (modified in place).
        tree: Vessel segments.
        zone_bounds_z: World z of the upper/middle and middle/lower boundaries.
        lung_z: World z of the lowest and highest lung voxel centres.
        rng: Random generator (nodule stream).
        max_tries: Places tried per nodule.
    """

    def __init__(
        self,
        grid: Grid,
        hu: NDArray[np.float32],
        tissue: NDArray[np.uint8],
        lungs: NDArray[np.uint8],
        nodule_labels: NDArray[np.uint16],
        tree: VesselTree,
        zone_bounds_z: tuple[float, float],
        lung_z: tuple[float, float],
        rng: np.random.Generator,
        max_tries: int = 400,
    ) -> None:
        self.grid, self.hu, self.tissue, self.lungs = grid, hu, tissue, lungs
        self.labels, self.tree, self.rng, self.max_tries = nodule_labels, tree, rng, max_tries
        self.zone_bounds_z, self.lung_z = zone_bounds_z, lung_z
        self.vox = float(np.prod(grid.spacing_zyx))
        self.side_bbox = {
            s: [
                ndimage.find_objects((lungs[k] == s).astype(np.uint8))
                for k in range(lungs.shape[0])
            ]
            for s in (1, 2)
        }

    # -- zone helpers -------------------------------------------------------
    def zone_of(self, z: float) -> str:
        """Zone of a world z: upper/middle/lower third of the lung height."""
        hi, lo = self.zone_bounds_z
        return "upper" if z >= hi else ("lower" if z < lo else "middle")

    def _zone_range(self, zone: str, margin: float) -> tuple[float, float]:
        z0, z1 = self.lung_z
        hi, lo = self.zone_bounds_z
        rng_ = {"lower": (z0, lo), "middle": (lo, hi), "upper": (hi, z1)}[zone]
        return rng_[0] + margin, rng_[1] - margin

    def _random_lung_voxel(self, side: int, zone: str) -> NDArray[np.float64] | None:
        g = self.grid
        zlo, zhi = self._zone_range(zone, 1.0)
        klo, khi = (
            np.ceil(g.to_index(np.array([zlo, 0, 0]))[0]),
            np.floor(g.to_index(np.array([zhi, 0, 0]))[0]),
        )
        if khi < klo:
            return None
        for _ in range(20):
            kz = int(self.rng.integers(int(klo), int(khi) + 1))
            objs = self.side_bbox[side][kz]
            if not objs or objs[0] is None:
                continue
            sy, sx = objs[0]
            j = int(self.rng.integers(sy.start, sy.stop))
            i = int(self.rng.integers(sx.start, sx.stop))
            if self.lungs[kz, j, i] == side:
                jitter = self.rng.uniform(-0.5, 0.5, size=3)
                return g.to_world(np.array([kz, j, i]) + jitter)
        return None

    # -- candidate centres per location ---------------------------------------
    def _parenchymal(
        self, spec: NoduleSpec, side: int, zone: str, relax: float
    ) -> NDArray[np.float64] | None:
        c = self._random_lung_voxel(side, zone)
        if c is None:
            return None
        r = spec.diameter_mm / 2 * PARENCHYMAL_REACH
        box = self.grid.box(c - r - 5.0, c + r + 5.0)
        if box is None:
            return None
        ball = _ball(self.grid, box, c, r + 5.0)
        if not np.all(self.lungs[box][ball] == side):
            return None
        if relax < 0:  # last resort: the nodule may engulf vessels
            return c
        near = _ball(self.grid, box, c, r + 5.0 * relax)
        if np.any(self.tissue[box][near] == Tissue.LUNG_VESSEL):
            return None
        return c

    def _juxtapleural(self, spec: NoduleSpec, side: int, zone: str) -> NDArray[np.float64] | None:
        g = self.grid
        r = spec.diameter_mm / 2
        zlo, zhi = self._zone_range(zone, 1.0)
        klo = int(np.ceil(g.to_index(np.array([zlo, 0, 0]))[0]))
        khi = int(np.floor(g.to_index(np.array([zhi, 0, 0]))[0]))
        if khi < klo:
            return None
        kz = int(self.rng.integers(klo, khi + 1))
        objs = self.side_bbox[side][kz]
        if not objs or objs[0] is None:
            return None
        sy, sx = objs[0]
        pad = 3
        sy = slice(max(sy.start - pad, 0), sy.stop + pad)
        sx = slice(max(sx.start - pad, 0), sx.stop + pad)
        lung2 = self.lungs[kz, sy, sx] == side
        wall2 = _WALL[self.tissue[kz, sy, sx]]
        sp2 = g.spacing_zyx[1:]
        d_wall = ndimage.distance_transform_edt(~wall2, sampling=sp2)
        d_any = ndimage.distance_transform_edt(lung2, sampling=sp2)
        depth = 0.8 * r
        tol = 0.6 * max(sp2)
        cand = lung2 & (np.abs(d_wall - depth) < tol) & (d_any >= d_wall - tol)
        pts = np.argwhere(cand)
        if pts.size == 0:
            return None
        j, i = pts[int(self.rng.integers(len(pts)))]
        c = g.to_world(np.array([kz, j + sy.start, i + sx.start], dtype=np.float64))
        box = g.box(c - r - 2 * max(g.spacing_zyx), c + r + 2 * max(g.spacing_zyx))
        if box is None:
            return None
        inner = _ball(g, box, c, 0.7 * r)
        if np.mean(self.lungs[box][inner] == side) < 0.97:
            return None
        return c

    def _juxtavascular(self, spec: NoduleSpec, side: int, zone: str) -> NDArray[np.float64] | None:
        t = self.tree
        if len(t) == 0:
            return None
        zlo, zhi = self._zone_range(zone, 1.0)
        mid = 0.5 * (t.p0 + t.p1)
        ok = (
            (t.side == side) & (t.r0 >= 1.0) & (t.r0 <= 3.5) & (mid[:, 0] > zlo) & (mid[:, 0] < zhi)
        )
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return None
        s = int(idx[self.rng.integers(idx.size)])
        p = t.p0[s] + self.rng.uniform(0.2, 0.8) * (t.p1[s] - t.p0[s])
        d = (t.p1[s] - t.p0[s]) / (np.linalg.norm(t.p1[s] - t.p0[s]) + 1e-9)
        v = self.rng.normal(size=3)
        v -= np.dot(v, d) * d
        v /= np.linalg.norm(v) + 1e-9
        r = spec.diameter_mm / 2
        rv = float(t.r0[s])
        c = p + v * (rv + r - min(0.3 * r, 0.8 * rv))
        box = self.grid.box(c - r * 1.4 - 2.0, c + r * 1.4 + 2.0)
        if box is None:
            return None
        if not np.all(self.lungs[box][_ball(self.grid, box, c, r * 1.3 + 2.0)] == side):
            return None
        return c

    # -- drawing --------------------------------------------------------------
    def place(self, spec: NoduleSpec, nid: int) -> PlacedNodule | str:
        """Place and draw one nodule; returns the result or a reason string on failure."""
        for attempt in range(self.max_tries):
            side = {"right": 1, "left": 2}[spec.side] if spec.side else int(self.rng.integers(1, 3))
            zone = spec.zone or str(self.rng.choice(["upper", "middle", "lower"]))
            if spec.location == "parenchymal":
                frac = attempt / self.max_tries
                relax = 1.0 if frac < 0.5 else (0.4 if frac < 0.75 else -1.0)
                c = self._parenchymal(spec, side, zone, relax)
            elif spec.location == "juxtapleural":
                c = self._juxtapleural(spec, side, zone)
            else:
                c = self._juxtavascular(spec, side, zone)
            if c is None:
                continue
            res = self._draw(spec, nid, c, side, zone)
            if res is not None:
                return res
        return (
            f"nodule {nid} ({spec.diameter_mm:.1f} mm {spec.type} {spec.location}, side "
            f"{spec.side}, zone {spec.zone}): no free place found in {self.max_tries} tries"
        )

    def _draw(
        self, spec: NoduleSpec, nid: int, c: NDArray[np.float64], side: int, zone: str
    ) -> PlacedNodule | None:
        g, rng = self.grid, self.rng
        r = spec.diameter_mm / 2
        lob = 0.05 if spec.calcified else rng.uniform(0.05, 0.25)
        try:
            shape = _Shape(g, c, r, rng, lob)
        except ValueError:
            return None
        box = shape.box
        lab = self.labels[box]
        allowed = self.lungs[box] == side
        n_target = round(np.pi / 6 * spec.diameter_mm**3 / self.vox)
        thr = shape.fit(allowed, n_target)
        mask = allowed & (shape.ratio < thr)
        if mask.sum() == 0 or np.any(lab[mask] != 0):
            return None
        # keep a gap to other nodules
        if np.any(lab[ndimage.binary_dilation(mask, iterations=2)] != 0):
            return None
        idx = np.argwhere(mask)
        cz = (idx.mean(axis=0) + [s.start for s in box]).astype(np.float64)
        cw = g.to_world(cz)
        if self.zone_of(float(cw[0])) != zone:
            return None
        t = self.tissue[box]
        if spec.location == "parenchymal":
            # the pleura check covered a ball of 1.25 r: the mask must stay inside it
            z, y, x = g.box_axes(box)
            d2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2
            if float(d2[mask].max()) > (PARENCHYMAL_REACH * r) ** 2:
                return None
        if spec.location == "juxtapleural":
            grown = ndimage.binary_dilation(mask)
            if not np.any(_WALL[t[grown]]):
                return None
        if spec.location == "juxtavascular":
            grown = ndimage.binary_dilation(mask, iterations=1)
            if not np.any(_VESSEL[t[grown & ~mask]]):
                return None
        frac = shape.fraction(thr)
        frac[~allowed] = 0.0
        hu_n, solid_d = self._nodule_hu(spec, shape, thr, allowed, g, c, rng)
        hb = self.hu[box]
        val = np.float32(LUNG_HU) + frac * (hu_n - np.float32(LUNG_HU))
        np.maximum(hb, np.where(allowed, val, np.float32(-2000)), out=hb)
        lab[mask] = nid
        t[mask] = Tissue.NODULE
        return PlacedNodule(spec, side, box, mask, float(hb[mask].mean()), solid_d)

    def _nodule_hu(
        self,
        spec: NoduleSpec,
        shape: _Shape,
        thr: float,
        allowed: NDArray[np.bool_],
        g: Grid,
        c: NDArray[np.float64],
        rng: np.random.Generator,
    ) -> tuple[NDArray[np.float32], float]:
        """HU field of the nodule over its box and the solid-component diameter."""
        ratio = shape.ratio / np.float32(thr)
        if spec.calcified:
            base = rng.uniform(350.0, 700.0)
            return (np.float32(base) + np.float32(250.0) * (1 - np.clip(ratio, 0, 1))).astype(
                np.float32
            ), spec.diameter_mm
        if spec.type == "solid":
            base = rng.uniform(15.0, 45.0)
            return (np.float32(base) + np.float32(15.0) * (1 - np.clip(ratio, 0, 1))).astype(
                np.float32
            ), spec.diameter_mm
        ggo = np.full(ratio.shape, rng.uniform(-640.0, -520.0), dtype=np.float32)
        if spec.type == "ground_glass":
            return ggo, 0.0
        d_core = spec.effective_solid_diameter_mm
        off = rng.normal(size=3)
        off *= 0.15 * (spec.diameter_mm - d_core) / 2 / (np.linalg.norm(off) + 1e-9)
        core = _Shape(g, c + off, d_core / 2, rng, rng.uniform(0.05, 0.2))
        # evaluate the core on the nodule's box
        core_ratio = _on_box(core.ratio, core.box, shape.box, fill=np.inf)
        core_h = _on_box(core.ratio_per_voxel, core.box, shape.box, fill=1.0)
        inside = allowed & (ratio < 1)
        vals = core_ratio[inside]
        n = round(np.pi / 6 * d_core**3 / self.vox)
        if vals.size > n >= 1:
            part = np.partition(vals, [n - 1, n])
            cthr = 0.5 * (part[n - 1] + part[n])
        else:
            cthr = 1.0
        f = np.clip(np.float32(0.5) + (np.float32(cthr) - core_ratio) / core_h, 0, 1)
        solid_hu = np.float32(rng.uniform(10.0, 40.0))
        return ggo + f * (solid_hu - ggo), d_core


def _on_box(a: NDArray[np.float32], src: Box, dst: Box, fill: float) -> NDArray[np.float32]:
    """Copy array ``a`` defined on box ``src`` onto box ``dst`` (``fill`` elsewhere)."""
    shape = tuple(s.stop - s.start for s in dst)
    out = np.full(shape, fill, dtype=np.float32)
    lo = [max(s.start, d.start) for s, d in zip(src, dst, strict=True)]
    hi = [min(s.stop, d.stop) for s, d in zip(src, dst, strict=True)]
    if any(h <= l for l, h in zip(lo, hi, strict=True)):
        return out
    out[tuple(slice(l - d.start, h - d.start) for l, h, d in zip(lo, hi, dst, strict=True))] = a[
        tuple(slice(l - s.start, h - s.start) for l, h, s in zip(lo, hi, src, strict=True))
    ]
    return out


__all__ = ["NodulePlacer", "PlacedNodule"]
