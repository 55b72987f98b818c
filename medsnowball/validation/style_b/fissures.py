"""Interlobar fissures: thin curved pleural sheets (right oblique + horizontal, left oblique).

Each fissure is a height field ``z = f(y, x)``: the oblique fissures run from high on the
posterior chest wall down to the anterior diaphragm, bowed laterally; the right horizontal
fissure is nearly level and exists only in front of the oblique one. A sheet of thickness
``t`` is painted with the exact partial-volume overlap of the voxel (extent ``h`` along the
sheet normal) with the slab ``|d| < t / 2``, which gives -700..-300 HU on clinical grids.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medsnowball.validation.style_b.anatomy import SliceFrame
from medsnowball.validation.style_b.layout import Layout
from medsnowball.validation.style_b.tissue import HU
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.tubes import Grid


class Fissures:
    """The three fissure surfaces of one case.

    Args:
        lay: Body layout.
        frame: Slice maps.
        grid: The voxel grid.
        rng: Anatomy random stream.
    """

    def __init__(self, lay: Layout, frame: SliceFrame, grid: Grid, rng: np.random.Generator):
        self.lay = lay
        self.y_ant = frame.y_ant
        self.y_post = lay.y_vb + lay.r_vb
        self.half_w = frame.half_w
        self.u_post = {1: rng.uniform(0.66, 0.74), 2: rng.uniform(0.7, 0.78)}
        self.u_ant = {1: rng.uniform(0.05, 0.15), 2: rng.uniform(0.05, 0.15)}
        self.bow = {1: rng.uniform(0.04, 0.1), 2: rng.uniform(0.04, 0.1)}
        self.lat = {1: rng.uniform(-0.08, 0.0), 2: rng.uniform(-0.08, 0.0)}
        self.u_hor = rng.uniform(0.52, 0.6)
        self.tilt = rng.uniform(-0.04, 0.04)
        self.thickness = float(rng.uniform(0.5, 0.8))
        self.spacing = grid.spacing
        self.maps = []
        for name in ("obl1", "obl2", "hor"):
            zf = self.surface(name, frame.y, frame.x)
            gy, gx = np.gradient(zf, grid.spacing[1], grid.spacing[2])
            nrm = np.sqrt(1.0 + gy * gy + gx * gx)
            nz, ny, nx = 1.0 / nrm, -gy / nrm, -gx / nrm
            h = np.sqrt(
                (nz * grid.spacing[0]) ** 2
                + (ny * grid.spacing[1]) ** 2
                + (nx * grid.spacing[2]) ** 2
            )
            self.maps.append((zf, nrm, h))
        self.hor_valid = self.maps[2][0] > self.maps[0][0]

    def surface(
        self, name: str, y: NDArray[np.float64], x: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """World z of fissure ``"obl1"``, ``"obl2"`` (oblique, right/left) or ``"hor"``."""
        lay = self.lay
        tau = np.clip((self.y_post - y) / (self.y_post - self.y_ant), 0.0, 1.0)
        if name == "hor":
            return lay.z_low + lay.height * (self.u_hor + self.tilt * tau)
        side = 1 if name == "obl1" else 2
        xl = lay.xm + (-1 if side == 1 else 1) * 0.55 * self.half_w
        u = self.u_post[side] - (self.u_post[side] - self.u_ant[side]) * tau**0.9
        u = u + self.bow[side] * ((x - xl) / self.half_w) ** 2
        u = u + self.lat[side] * np.abs(x - lay.xm) / self.half_w
        return lay.z_low + lay.height * u

    def lobe(self, p_zyx: NDArray[np.float64], side: int) -> NDArray[np.int64]:
        """Lobe index of world points ``(n, 3)``: right 0 upper / 1 middle / 2 lower, left
        0 upper / 2 lower."""
        z, y, x = p_zyx[:, 0], p_zyx[:, 1], p_zyx[:, 2]
        lower = z < self.surface(f"obl{side}", y, x)
        out = np.where(lower, 2, 0)
        if side == 1:
            middle = ~lower & (z < self.surface("hor", y, x))
            out = np.where(middle, 1, out)
        return out

    def distance(self, p_zyx: NDArray[np.float64], side: int) -> NDArray[np.float64]:
        """Approximate (vertical) distance in mm of points ``(n, 3)`` to the nearest fissure
        of their lung."""
        z, y, x = p_zyx[:, 0], p_zyx[:, 1], p_zyx[:, 2]
        d = np.abs(z - self.surface(f"obl{side}", y, x))
        if side == 1:
            zh = self.surface("hor", y, x)
            valid = zh > self.surface("obl1", y, x)
            d = np.where(valid, np.minimum(d, np.abs(z - zh)), d)
        return d

    def paint_slice(
        self,
        k: int,
        z: float,
        hu: NDArray[np.float32],
        tis: NDArray[np.uint8],
        lungs: NDArray[np.uint8],
    ) -> None:
        """Blend the fissure sheets into slice ``k`` at height ``z`` (in place, 2-D arrays)."""
        del k
        v = HU[T.FISSURE]
        half = 0.5 * self.thickness
        for i, side in ((0, 1), (1, 2), (2, 1)):
            zf, nrm, h = self.maps[i]
            d = (z - zf) / nrm
            near = np.abs(d) < half + h
            if i == 2:
                near &= self.hor_valid
            near &= lungs == side
            if not near.any():
                continue
            dd, hh = d[near], h[near]
            ov = np.minimum(dd + hh / 2, half) - np.maximum(dd - hh / 2, -half)
            occ = np.clip(ov / hh, 0.0, 1.0).astype(np.float32)
            cur = hu[near]
            hu[near] = cur + occ * np.maximum(v - cur, 0.0)
            sub = tis[near]
            through = np.abs(dd) <= 0.5 * hh  # voxels the sheet's mid-surface passes through
            sub[(through | (occ >= 0.25)) & (sub == T.LUNG)] = T.FISSURE
            tis[near] = sub


__all__ = ["Fissures"]
