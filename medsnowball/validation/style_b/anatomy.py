"""Body, chest wall, spine, sternum, mediastinum, heart, diaphragm and lungs, slice by slice.

Every axial slice is painted from 2-D maps computed once (polar angle and radius around the
body centre, dome heights, mediastinal half-width): the cavity is the skin super-ellipse
minus the chest wall, scaled down towards the apex; the lungs are the cavity above the two
diaphragm domes minus the mediastinal band, heart ellipsoid and spine block.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medsnowball.validation.style_b.layout import Layout
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.tubes import Grid


class SliceFrame:
    """2-D maps of one axial slice grid shared by all slices.

    Args:
        grid: The voxel grid.
        lay: The body layout.
    """

    def __init__(self, grid: Grid, lay: Layout) -> None:
        y = grid.axis(1)[:, None]
        x = grid.axis(2)[None, :]
        self.y = np.broadcast_to(y, (grid.shape[1], grid.shape[2]))
        self.x = np.broadcast_to(x, (grid.shape[1], grid.shape[2]))
        self.right = self.x < lay.xm
        phi = np.arctan2(self.y - lay.yc, self.x - lay.xc)
        self.rho = np.hypot(self.y - lay.yc, self.x - lay.xc)
        self.r_body = lay.body_radius(phi)
        self.r_cav0 = self.r_body - lay.wall_thickness(phi)
        self.r_fat_in = self.r_body - 2.0 - lay.fat * (0.6 + 0.6 * np.cos(phi) ** 2)
        k = lay.k
        # half-cavity sizes for the domes
        half_w = float(lay.body_radius(np.array(0.0)) - lay.wall_thickness(np.array(0.0)))
        half_d = float(
            lay.body_radius(np.array(np.pi / 2)) - lay.wall_thickness(np.array(np.pi / 2))
        )
        self.half_w, self.half_d = half_w, half_d
        y_ant = lay.yc - float(
            lay.body_radius(np.array(-np.pi / 2)) - lay.wall_thickness(np.array(-np.pi / 2))
        )
        self.y_ant = y_ant
        dome = np.zeros_like(self.rho)
        for side, rise in ((True, lay.dome_right), (False, lay.dome_left)):
            xd = lay.xm + (-1 if side else 1) * 0.5 * half_w
            q = (
                1
                - ((self.x - xd) / (0.62 * half_w)) ** 2
                - ((self.y - (lay.yc - 0.15 * half_d)) / (0.9 * half_d)) ** 2
            )
            h = lay.z_low + rise * np.sqrt(np.clip(q, 0.0, 1.0))
            dome = np.where(self.right == side, h, dome)
        self.dome = dome
        t = np.clip((self.y - y_ant) / (lay.y_vb - y_ant), 0.0, 1.0)
        w_c, w_p = 24.0 * k, 19.0 * k
        dx = np.abs(self.x - lay.xm)
        self.med_junction = dx < np.interp(t, [0, 0.25, 0.7, 1.0], [2.5 * k, w_c, 0.85 * w_c, w_p])
        self.med_wide = dx < np.interp(t, [0, 0.25, 0.7, 1.0], [14 * k, w_c, 0.85 * w_c, w_p])
        self.med_inlet = dx < np.interp(t, [0, 0.25, 0.7, 1.0], [20 * k, 32 * k, 30 * k, w_p])
        self.med_any = self.y < lay.y_vb + 0.2 * lay.r_vb
        dvb = np.hypot(self.y - lay.y_vb, self.x - lay.xc)
        self.vb = dvb < lay.r_vb
        self.vb_marrow = dvb < lay.r_vb - 1.8
        self.spine_block = (dvb < lay.r_vb + 2.5) | (
            (np.abs(self.x - lay.xc) < 0.95 * lay.r_vb) & (self.y > lay.y_vb)
        )
        yc_canal = lay.y_vb + lay.r_vb + 7.0 * k
        self.canal = np.hypot(self.y - yc_canal, self.x - lay.xc) < 7.0 * k
        self.arch = (np.hypot(self.y - yc_canal, self.x - lay.xc) < 13.0 * k) & ~self.canal
        self.spinous = (
            (np.abs(self.x - lay.xc) < 3.5 * k)
            & (self.y > yc_canal)
            & (self.y < yc_canal + 38.0 * k)
        )
        self.table = (self.y > lay.yc + lay.b + 6.0) & (self.y < lay.yc + lay.b + 15.0)


def paint_slice(
    frame: SliceFrame, lay: Layout, z: float
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Tissue classes and lung labels of the axial slice at world height ``z``.

    Args:
        frame: Precomputed 2-D maps.
        lay: The body layout.
        z: World z (mm) of the slice.

    Returns:
        ``(tissue, lungs)``, uint8 ``(y, x)``: tissue classes, lung labels (1 right, 2 left).
    """
    u = (z - lay.z_low) / lay.height
    tis = np.full(frame.rho.shape, T.AIR, dtype=np.uint8)
    tis[frame.table] = T.TABLE
    body = frame.rho < frame.r_body
    tis[body] = T.SKIN
    tis[frame.rho < frame.r_body - 2.0] = T.FAT
    tis[frame.rho < frame.r_fat_in] = T.MUSCLE
    scale = lay.cavity_scale(u) if u > 0 else 1.0
    cav = frame.rho < scale * frame.r_cav0
    below = z <= frame.dome
    lungs = np.zeros(frame.rho.shape, dtype=np.uint8)
    if scale > 0:
        tis[cav] = T.MEDIASTINAL_FAT
        organ = cav & below
        tis[organ & frame.right] = T.LIVER
        tis[organ & ~frame.right] = T.ABDOMEN
        if u > 0.85:
            med = frame.med_inlet
        elif 0.48 < u < 0.8:
            med = frame.med_junction
        else:
            med = frame.med_wide
        lung = cav & ~below & ~(med & frame.med_any) & ~frame.spine_block
        hz, hy, hx = lay.heart
        az, ay, ax = lay.heart_axes
        qz = 1.0 - ((z - hz) / az) ** 2
        if qz > 0:
            heart = ((frame.y - hy) / ay) ** 2 + ((frame.x - hx) / ax) ** 2 < qz
            heart &= cav
            lung &= ~heart
            tis[heart] = T.HEART
        tis[lung] = T.LUNG
        lungs[lung & frame.right] = 1
        lungs[lung & ~frame.right] = 2
    elif u >= 1.0:
        tis[frame.rho < 0.6 * frame.r_cav0] = T.MUSCLE
    # spine: vertebral body (discs every rib pitch), canal, arch, spinous process
    disc = (z - lay.z_low) % lay.rib_pitch < 0.2 * lay.rib_pitch
    tis[frame.vb] = T.DISC if disc else T.CORTICAL_BONE
    if not disc:
        tis[frame.vb_marrow] = T.MARROW
    tis[frame.arch & body] = T.CORTICAL_BONE
    tis[frame.spinous & body] = T.CORTICAL_BONE
    tis[frame.canal] = T.CSF
    if 0.3 < u < 0.86:  # sternum
        y0 = lay.yc - scale * (lay.yc - frame.y_ant) - 11.0 * lay.k
        st = (
            (np.abs(frame.x - lay.xm) < 13.0 * lay.k)
            & (frame.y > y0)
            & (frame.y < y0 + 10.0 * lay.k)
        )
        tis[st] = T.CORTICAL_BONE
        inner = (
            (np.abs(frame.x - lay.xm) < 13.0 * lay.k - 1.5)
            & (frame.y > y0 + 1.5)
            & (frame.y < y0 + 10.0 * lay.k - 1.5)
        )
        tis[inner] = T.MARROW
    return tis, lungs


def rib_polylines(
    grid: Grid, lay: Layout, frame: SliceFrame
) -> list[tuple[NDArray[np.float64], bool]]:
    """Centre lines of the ribs (12 per side), just outside the pleura.

    Each rib leaves the spine, curves laterally around the cavity and descends by about two
    rib spaces towards its anterior (cartilage) end.

    Args:
        grid: The voxel grid.
        lay: The body layout.
        frame: Slice maps (cavity geometry).

    Returns:
        ``(points, cartilage)`` pairs: ``(m, 3)`` world points (z, y, x) of the bony part,
        then of the costal cartilage.
    """
    del grid, frame
    out: list[tuple[NDArray[np.float64], bool]] = []
    z_apex = lay.z_low + lay.height
    r_rib = 5.0 * lay.k
    for i in range(12):
        z0 = z_apex - (0.45 + i) * lay.rib_pitch * 0.82
        for sgn in (-1.0, 1.0):
            s = np.linspace(0.0, 1.0, 18)
            phi = np.where(
                sgn < 0,
                np.pi / 2 + 0.3 + s * (np.pi - 0.65),
                np.pi / 2 - 0.3 - s * (np.pi - 0.65),
            )
            z = z0 + 10.0 * lay.k * s - (1.9 * lay.rib_pitch + 10.0 * lay.k) * s**2
            u = (z - lay.z_low) / lay.height
            scale = np.array([lay.cavity_scale(float(v)) if v > 0 else 1.0 for v in u])
            rc = scale * (lay.body_radius(phi) - lay.wall_thickness(phi)) + r_rib + 1.5
            if np.any(scale < 0.3):
                continue
            pts = np.stack([z, lay.yc + rc * np.sin(phi), lay.xc + rc * np.cos(phi)], axis=1)
            n_bone = 14 if i < 10 else 18
            out.append((pts[: n_bone + 1], False))
            if n_bone < 18:
                out.append((pts[n_bone:], True))
    return out


__all__ = ["SliceFrame", "paint_slice", "rib_polylines"]
