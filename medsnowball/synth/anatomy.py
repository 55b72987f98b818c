"""Slice-by-slice chest anatomy: body wall, ribs, spine, sternum, heart, lungs, diaphragm.

Cranio-caudal positions are expressed as ``u`` in [0, 1] over the field of view (0 at the
bottom edge of slice 0, the most inferior slice; 1 at the top edge of the last slice), so
the anatomy stretches with the z extent. In-plane sizes scale with ``Anatomy.k`` (1.0 for
a 330 mm wide adult body). The great vessels and airways are tubes drawn afterwards
(:mod:`medsnowball.synth.mediastinum`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.synth.shapes import Grid
from medsnowball.synth.tissues import Tissue

_T = Tissue


@dataclass(frozen=True)
class Anatomy:
    """Random, seed-dependent parameters of one phantom's anatomy (world mm unless noted).

    Attributes:
        grid: The voxel grid.
        xc: Body centre x (LPS mm); the midline.
        yc: Body centre y.
        a: Body half-width.
        b: Body half-depth (antero-posterior).
        k: In-plane scale (a / 165 mm).
        z_bottom: World z of the lower edge of slice 0 (u = 0).
        z_span: z extent of the field of view (mm).
        xc_c: Thoracic cavity centre x (= xc).
        yc_c: Thoracic cavity centre y.
        a_c: Cavity half-width.
        b_c: Cavity half-depth.
        y_vb: y of the vertebral-body centres.
        y_tr: y of the trachea.
        junction_halfwidth: Half-width (mm) of the anterior junction line between the lungs.
        u_apex: Lung apex height (right, left).
        u_dome: Diaphragm dome height (right, left).
        u_carina: Height of the carina.
        rib_offset: Cranio-caudal shift of the rib cage (u units).
        heart: (x, y, u, half-width, half-depth, half-height in u, angle rad).
        fat_factor: Subcutaneous fat thickness multiplier.
    """

    grid: Grid
    xc: float
    yc: float
    a: float
    b: float
    k: float
    z_bottom: float
    z_span: float
    xc_c: float
    yc_c: float
    a_c: float
    b_c: float
    y_vb: float
    y_tr: float
    junction_halfwidth: float
    u_apex: tuple[float, float]
    u_dome: tuple[float, float]
    u_carina: float
    rib_offset: float
    heart: tuple[float, float, float, float, float, float, float]
    fat_factor: float

    def u_of_z(self, z: float | NDArray[np.float64]) -> float | NDArray[np.float64]:
        """World z (mm) -> relative height u."""
        return (z - self.z_bottom) / self.z_span

    def z_of_u(self, u: float) -> float:
        """Relative height u -> world z (mm)."""
        return self.z_bottom + u * self.z_span


def make_anatomy(grid: Grid, body_fraction: float, rng: np.random.Generator) -> Anatomy:
    """Draw the anatomy parameters for a grid.

    Args:
        grid: Voxel grid of the phantom.
        body_fraction: Body width / FOV width.
        rng: Random generator (anatomy stream).

    Returns:
        The parameters.
    """
    nz, ny, nx = grid.shape_zyx
    dz, dy, dx = grid.spacing_zyx
    fov_x, fov_y = nx * dx, ny * dy
    x_mid = grid.origin_lps[0] + (nx - 1) * dx / 2
    y_mid = grid.origin_lps[1] + (ny - 1) * dy / 2
    a = body_fraction * fov_x / 2 * rng.uniform(0.94, 1.0)
    b = min(a * rng.uniform(0.68, 0.76), 0.40 * fov_y)
    k = a / 165.0
    # keep body + table (about 0.12 * a below the body) inside the field of view
    yc = min(y_mid + 0.04 * fov_y, grid.origin_lps[1] + (ny - 1) * dy - b - 0.14 * a)
    yc = max(yc, grid.origin_lps[1] + b + 2.0)
    fat_factor = rng.uniform(0.6, 1.5)
    skin = max(1.5, 1.5 * k)
    wall_lat = skin + 18.0 * k * fat_factor + 17.0 * k
    wall_ant = skin + 11.0 * k * fat_factor + 17.0 * k
    wall_post = skin + 11.0 * k * fat_factor + 38.0 * k
    a_c = a - wall_lat
    b_c = b - (wall_ant + wall_post) / 2
    yc_c = yc + (wall_ant - wall_post) / 2
    y_vb = yc + b - 80.0 * k
    y_tr = y_vb - 40.0 * k
    u_apex_r = rng.uniform(0.93, 0.955)
    u_dome_r = rng.uniform(0.33, 0.40)
    heart = (
        x_mid + a_c * rng.uniform(0.14, 0.24),
        yc_c - b_c * rng.uniform(0.12, 0.22),
        rng.uniform(0.28, 0.33),
        a_c * rng.uniform(0.44, 0.50),
        b_c * rng.uniform(0.52, 0.6),
        rng.uniform(0.19, 0.23),
        np.deg2rad(rng.uniform(20.0, 40.0)),
    )
    return Anatomy(
        grid=grid,
        xc=x_mid,
        yc=yc,
        a=a,
        b=b,
        k=k,
        z_bottom=grid.origin_lps[2] - dz / 2,
        z_span=nz * dz,
        xc_c=x_mid,
        yc_c=yc_c,
        a_c=a_c,
        b_c=b_c,
        y_vb=y_vb,
        y_tr=y_tr,
        junction_halfwidth=float(rng.uniform(0.3, 1.0)),
        u_apex=(u_apex_r, u_apex_r - rng.uniform(0.0, 0.02)),
        u_dome=(u_dome_r, u_dome_r - rng.uniform(0.02, 0.06)),
        u_carina=rng.uniform(0.64, 0.69),
        rib_offset=rng.uniform(-0.02, 0.02),
        heart=heart,  # type: ignore[arg-type]
        fat_factor=fat_factor,
    )


RIB_PITCH_U = 0.080  # cranio-caudal distance between posterior rib heads (u units)
_N_RIBS = 12


class SliceMaps:
    """2-D maps shared by all slices (computed once per phantom).

    Attributes:
        xg: x offset from the midline (1, nx) mm; yg: world y (ny, 1) mm.
        base: uint8 (ny, nx) tissue classes common to all slices (air, table, body wall,
            cavity filled with mediastinal fat).
        body: bool (ny, nx) inside the body.
        r_c: float32 (ny, nx) normalised radius of the thoracic-cavity ellipse (1 on it).
        ray_c: float32 (ny, nx) distance from the cavity centre to the cavity boundary
            along the ray through each pixel (mm).
        cavity_max: bool (ny, nx) inside the ribs at the lung bases (the widest level).
        spine_excl: bool (ny, nx) region around the spine that lungs never enter.
        u_dia: float32 (ny, nx) diaphragm height (u) at each position.
        rib_c: distance of the rib centre line outside the cavity boundary (mm).
        phi: float32 (ny, nx) angle from the posterior midline (0 to pi, rad).
    """

    def __init__(self, anat: Anatomy) -> None:
        g = anat.grid
        k = anat.k
        self.xg = (g.axis(2) - np.float32(anat.xc))[None, :]
        self.yg = g.axis(1)[:, None]
        Yr = self.yg - np.float32(anat.yc)
        ex = self.xg / np.float32(anat.a)
        ey = Yr / np.float32(anat.b)
        p = np.where(ey > 0, np.float32(2.6), np.float32(2.0))
        r_se = (np.abs(ex) ** p + np.abs(ey) ** p) ** (1.0 / p)
        r_se = np.maximum(r_se, np.float32(1e-3))
        dist = np.sqrt(self.xg**2 + Yr**2)
        depth = dist * (1.0 / r_se - 1.0)  # depth below the skin along the ray (mm)
        rn = np.sqrt(ex**2 + ey**2) + np.float32(1e-6)
        c_t = ex / rn
        body = r_se < 1.0
        fat_t = k * (11.0 + 7.0 * c_t**2) * anat.fat_factor
        skin_t = max(1.5, 1.5 * k)
        base = np.full(body.shape, _T.AIR, dtype=np.uint8)
        # table below (posterior to) the body
        y_tab = anat.yc + anat.b + 6.0 * k
        tab_w = 0.9 * anat.a
        tab = (self.yg >= y_tab) & (self.yg < y_tab + 45.0 * k) & (np.abs(self.xg) < tab_w)
        base[np.broadcast_to(tab, base.shape)] = _T.TABLE_CORE
        shell = tab & ((self.yg < y_tab + 3.0) | (self.yg >= y_tab + 45.0 * k - 3.0))
        base[np.broadcast_to(shell, base.shape)] = _T.TABLE_SHELL
        base[body] = _T.MUSCLE
        base[body & (depth < skin_t + fat_t)] = _T.FAT
        base[body & (depth < skin_t)] = _T.SKIN
        self.body = body
        # thoracic cavity: its own ellipse, slightly flattened posteriorly
        cx = self.xg / np.float32(anat.a_c)
        yr_c = self.yg - np.float32(anat.yc_c)
        cy = yr_c / np.float32(anat.b_c)
        pc = np.where(cy > 0, np.float32(2.6), np.float32(2.0))
        r_c = np.maximum((np.abs(cx) ** pc + np.abs(cy) ** pc) ** (1.0 / pc), np.float32(1e-3))
        self.r_c = r_c.astype(np.float32)
        self.ray_c = (np.sqrt(self.xg**2 + yr_c**2) / r_c).astype(np.float32)
        rnc = np.sqrt(cx**2 + cy**2) + np.float32(1e-6)
        self.phi = np.arccos(np.clip(cy / rnc, -1.0, 1.0)).astype(np.float32)
        self.rib_c = np.float32(1.0 * k + 5.0 * k)  # rib centre line outside the cavity (mm)
        self.rib_half = np.float32(5.0 * k)
        self.cavity_max = body & (r_c < 1.0)
        base[self.cavity_max] = _T.MEDIASTINAL_FAT
        self.base = base
        # spine exclusion (vertebral body + prevertebral tissue, everything behind it)
        rx, ry = 17.0 * k, 15.0 * k
        vb_y = self.yg - np.float32(anat.y_vb)
        self.spine_excl = ((self.xg / (rx + 5 * k)) ** 2 + (vb_y / (ry + 5 * k)) ** 2 < 1) | (
            (np.abs(self.xg) < rx + 4 * k) & (vb_y > 0)
        )
        # diaphragm: one dome per side, deepest (lowest) at the posterior periphery
        domes = []
        for sgn, u_top in ((-1.0, anat.u_dome[0]), (1.0, anat.u_dome[1])):
            dx_ = (self.xg - np.float32(sgn * 0.45 * anat.a_c)) / np.float32(0.6 * anat.a_c)
            dy_ = (self.yg - np.float32(anat.yc_c - 0.25 * anat.b_c)) / np.float32(0.85 * anat.b_c)
            rho2 = dx_**2 + dy_**2
            domes.append(np.float32(u_top) - np.float32(0.30) * np.minimum(rho2, 1.6) ** 1.25)
        self.u_dia = np.maximum(np.maximum(domes[0], domes[1]), np.float32(0.02)).astype(np.float32)


def _mediastinum_halfwidth(anat: Anatomy, u: float, y: NDArray[np.float32]) -> NDArray[np.float32]:
    """Half-width (mm) of the mediastinal band at height ``u`` for each row ``y``."""
    k = anat.k
    jw = anat.junction_halfwidth
    w_ant = float(np.interp(u, [0.44, 0.52, 0.82, 0.9], [12 * k, jw, jw, 22 * k]))
    w_mid = float(np.interp(u, [0.5, 0.56, 0.84, 0.9], [20 * k, 26 * k, 26 * k, 18 * k]))
    w_post = 14.0 * k
    y0 = anat.yc_c - anat.b_c
    ys = [y0, y0 + 24 * k, anat.y_tr - 12 * k, anat.y_tr + 12 * k, anat.y_vb]
    return np.interp(y.ravel(), ys, [w_ant, w_ant, w_mid, w_mid, w_post]).astype(np.float32)


def fill_slice(
    anat: Anatomy, maps: SliceMaps, u: float
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Tissue classes and lung labels of one axial slice.

    Args:
        anat: Anatomy parameters.
        maps: Precomputed 2-D maps.
        u: Relative height of the slice centre.

    Returns:
        ``(tissue (ny, nx) uint8, lungs (ny, nx) uint8 0/1 right/2 left)``.
    """
    k = anat.k
    xg, yg = maps.xg, maps.yg
    lab = maps.base.copy()
    scale = np.float32(1.0 - _extra_wall(anat, u) / anat.a_c)
    if scale < 1.0:
        cav = maps.cavity_max & (maps.r_c < scale)
        lab[maps.cavity_max & ~cav] = _T.MUSCLE
    else:
        cav = maps.cavity_max
    below = cav & (np.float32(u) < maps.u_dia)
    lab[below & (xg < 0.25 * anat.a_c)] = _T.LIVER
    lab[below & (xg >= 0.25 * anat.a_c)] = _T.ABDOMEN
    # heart (ellipsoid, rotated in-plane)
    hx, hy, hu, ha, hb, hz, ang = anat.heart
    heart_excl = np.zeros(lab.shape, dtype=bool)
    if abs(u - hu) < hz:
        s = float(np.sqrt(1.0 - ((u - hu) / hz) ** 2))
        ca, sa = np.float32(np.cos(ang)), np.float32(np.sin(ang))
        xr = xg + np.float32(anat.xc - hx)
        yr = yg - np.float32(hy)
        q = ((xr * ca + yr * sa) / np.float32(ha * s)) ** 2 + (
            (-xr * sa + yr * ca) / np.float32(hb * s)
        ) ** 2
        heart = q < 1.0
        margin = (1.0 + 5.0 * k / (min(ha, hb) * s)) ** 2
        heart_excl = q < margin
        on = heart & ~below
        lab[on] = _T.HEART
        lab[on & (q < 0.55)] = _T.BLOOD_POOL
    # lungs
    w = _mediastinum_halfwidth(anat, u, yg)
    xm = 3.0 * k
    med = np.abs(xg - np.float32(xm)) < w[:, None]
    lung = cav & ~below & ~med & ~heart_excl & ~maps.spine_excl
    lungs = np.zeros(lab.shape, dtype=np.uint8)
    for side, sgn in ((1, -1.0), (2, 1.0)):
        u_apex = anat.u_apex[side - 1]
        if u >= u_apex:
            continue
        half = lung & ((xg < xm) if side == 1 else (xg >= xm))
        u_t = 0.84
        if u > u_t:
            t = float(np.sqrt((u_apex - u) / (u_apex - u_t)))
            ax = np.float32(xm + sgn * 0.5 * anat.a_c)
            ay = np.float32(anat.yc_c + 0.1 * anat.b_c)
            half &= ((xg - ax) / np.float32(0.62 * anat.a_c * t)) ** 2 + (
                (yg - ay) / np.float32(1.15 * anat.b_c * t)
            ) ** 2 < 1.0
        lungs[half] = side
    lab[lungs > 0] = _T.LUNG
    _draw_spine(anat, maps, u, lab)
    dr = (maps.r_c - scale) * maps.ray_c - maps.rib_c  # radial offset from the rib centre line
    _draw_ribs(anat, maps, u, lab, dr)
    _draw_sternum(anat, maps, u, lab, dr)
    return lab, lungs


def _extra_wall(anat: Anatomy, u: float) -> float:
    """Extra chest-wall thickness (mm) narrowing the thorax towards the apex."""
    s = float(np.clip((u - 0.45) / 0.5, 0.0, 1.0))
    return 0.28 * anat.a_c * s * s


def _bone(
    lab: NDArray[np.uint8], inside: NDArray[np.bool_], q: NDArray[np.float32], core: float
) -> None:
    """Paint cortical bone where ``inside`` and marrow where also ``q < core``."""
    lab[inside] = _T.CORTICAL_BONE
    lab[inside & (q < core)] = _T.MARROW


def _draw_spine(anat: Anatomy, maps: SliceMaps, u: float, lab: NDArray[np.uint8]) -> None:
    k = anat.k
    xg, yg = maps.xg, maps.yg
    rx, ry = 17.0 * k, 15.0 * k
    phase = ((u - anat.rib_offset) / RIB_PITCH_U) % 1.0
    qv = (xg / np.float32(rx)) ** 2 + ((yg - np.float32(anat.y_vb)) / np.float32(ry)) ** 2
    vb = qv < 1.0
    if phase < 0.18:
        lab[vb] = _T.DISC
    else:
        _bone(lab, vb, qv, 0.72)
    cy = anat.y_vb + ry + 8.0 * k
    rc = np.sqrt(xg**2 + (yg - np.float32(cy)) ** 2)
    ax = np.abs(xg)
    arch = (rc >= 7.0 * k) & (rc < 10.5 * k) & (cy - 2.0 * k < yg)
    spinous = (ax < 2.5 * k + 0.05 * (yg - cy)) & (cy + 9.0 * k < yg) & (yg < cy + 38.0 * k)
    # transverse processes point postero-laterally
    tp_y = np.float32(cy) + np.float32(0.45) * (ax - np.float32(8.0 * k))
    transverse = (ax > 8.0 * k) & (ax < 24.0 * k) & (np.abs(yg - tp_y) < 3.2 * k)
    if 0.25 <= phase < 0.9:
        lab[arch | spinous] = _T.CORTICAL_BONE
    if 0.35 <= phase < 0.7:
        lab[transverse] = _T.CORTICAL_BONE
    lab[rc < 7.0 * k] = _T.CSF


def _draw_ribs(
    anat: Anatomy, maps: SliceMaps, u: float, lab: NDArray[np.uint8], dr: NDArray[np.float32]
) -> None:
    k = anat.k
    idx = np.flatnonzero(maps.body & (np.abs(dr) < maps.rib_half))
    if idx.size == 0:
        return
    frac = maps.phi.ravel()[idx] / np.float32(np.pi)
    band_dr = dr.ravel()[idx]
    drop = np.float32(2.0 * RIB_PITCH_U) * frac**1.2
    u_first = max(anat.u_apex) + 0.02 + anat.rib_offset
    i_f = (np.float32(u_first) - drop - np.float32(u)) / np.float32(RIB_PITCH_U)
    i = np.clip(np.rint(i_f), 0, _N_RIBS - 1)
    dz = (np.float32(u) - (np.float32(u_first) - i * np.float32(RIB_PITCH_U) - drop)) * np.float32(
        anat.z_span
    )
    hz, hr = 6.0 * k, 3.8 * k
    q = (dz / np.float32(hz)) ** 2 + (band_dr / np.float32(hr)) ** 2
    end = np.where(i >= 9, 0.55 + 0.05 * (11 - i), 0.78)  # lower ribs are shorter
    ok = (q < 1.0) & (frac > 0.07)
    bone = ok & (frac < end)
    cart = ok & (frac >= end) & (frac < 0.93) & (i < 9)
    flat = lab.reshape(-1)
    flat[idx[bone]] = _T.CORTICAL_BONE
    flat[idx[bone & (q < 0.4)]] = _T.MARROW
    flat[idx[cart]] = _T.CARTILAGE


def _draw_sternum(
    anat: Anatomy, maps: SliceMaps, u: float, lab: NDArray[np.uint8], dr: NDArray[np.float32]
) -> None:
    k = anat.k
    if not 0.4 < u - anat.rib_offset < 0.86:
        return
    half_w = 13.0 * k if u - anat.rib_offset < 0.72 else 22.0 * k
    xg, yg = maps.xg, maps.yg
    q = (xg / np.float32(half_w)) ** 2 + (dr / np.float32(6.0 * k)) ** 2
    inside = (q < 1.0) & (np.float32(anat.yc) > yg)
    _bone(lab, inside, q, 0.45)


__all__ = ["RIB_PITCH_U", "Anatomy", "SliceMaps", "fill_slice", "make_anatomy"]
