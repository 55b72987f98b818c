"""Mediastinal tubes: trachea and main-bronchus origin, oesophagus, aorta (ascending, arch,
descending), superior vena cava, pulmonary trunk and the hilar roots of the trees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.validation.style_b.layout import Layout
from medsnowball.validation.style_b.tissue import HU
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.tubes import Grid, paint_tubes


@dataclass(frozen=True)
class Hila:
    """Root points (world ``(z, y, x)``) of the trees, per side (1 right, 2 left).

    Attributes:
        pa_start: Pulmonary-artery bifurcation (start of both arterial roots).
        artery: Arterial hilum point per side.
        atrium: Left-atrium point (start of the venous roots).
        vein: Venous hilum point per side.
        carina: Carina (start of both main bronchi).
        trachea_r: Tracheal lumen radius.
    """

    pa_start: NDArray[np.float64]
    artery: dict[int, NDArray[np.float64]]
    atrium: NDArray[np.float64]
    vein: dict[int, NDArray[np.float64]]
    carina: NDArray[np.float64]
    trachea_r: float


def _poly(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    pts: list[tuple[float, float, float]] | list[NDArray[np.float64]],
    r: float,
    label: T,
    value: float | None = None,
) -> None:
    p = np.asarray(pts, dtype=float)
    rr = np.full(len(p) - 1, r)
    v = HU[label] if value is None else value
    paint_tubes(grid, hu, tis, p[:-1], p[1:], rr, rr, v, label, mode="over", clear=lungs)


def paint_mediastinum(
    grid: Grid,
    hu: NDArray[np.float32],
    tis: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    lay: Layout,
) -> Hila:
    """Paint the mediastinal tubes (in place; their voxels leave the lung mask).

    Args:
        grid: The voxel grid.
        hu: float32 ``(z, y, x)`` HU volume.
        tis: uint8 ``(z, y, x)`` tissue labels.
        lungs: uint8 ``(z, y, x)`` lung labels.
        lay: The body layout.

    Returns:
        The tree roots.
    """
    k, u = lay.k, lay.z_of_u
    z_top = grid.origin[0] + grid.shape[0] * grid.spacing[0] + 20.0
    z_bot = grid.origin[0] - 20.0
    y_spine_front = lay.y_vb - lay.r_vb
    # oesophagus (behind the trachea, left of midline)
    x_oe, y_oe = lay.xm + 5.0 * k, y_spine_front - 6.0 * k
    _poly(
        grid,
        hu,
        tis,
        lungs,
        [(z_top, y_oe, x_oe), (u(0.05), y_oe - 4 * k, x_oe + 8 * k)],
        6.5 * k,
        T.ESOPHAGUS,
    )
    # aorta: descending beside the spine, arch, ascending
    r_d, r_a = 11.0 * k, 14.0 * k
    x_d, y_d = lay.xc + lay.r_vb + 0.4 * r_d, lay.y_vb - 0.5 * lay.r_vb
    y_asc, x_asc = lay.yc - 0.3 * lay.b, lay.xm + 4.0 * k
    arch = [
        (z_bot, y_d, x_d),
        (u(0.72), y_d, x_d),
        (u(0.79), y_d - 15 * k, x_d - 5 * k),
        (u(0.82), 0.5 * (y_d + y_asc), lay.xm + 8 * k),
        (u(0.79), y_asc + 10 * k, x_asc),
        (u(0.72), y_asc, x_asc),
        (u(0.42), y_asc + 8 * k, x_asc),
    ]
    _poly(grid, hu, tis, lungs, arch[:3], r_d, T.AORTA)
    _poly(grid, hu, tis, lungs, arch[2:], r_a, T.AORTA)
    # superior vena cava right of the ascending aorta
    x_svc = x_asc - r_a - 10.0 * k
    _poly(
        grid,
        hu,
        tis,
        lungs,
        [(z_top, y_asc + 8 * k, x_svc), (u(0.45), y_asc + 12 * k, x_svc)],
        9.0 * k,
        T.VEIN,
    )
    # trachea (wall then lumen), carina
    y_tr = y_oe - 6.5 * k - 12.0 * k
    r_tr = 8.5 * k
    carina = np.array([u(lay.u_carina), y_tr, lay.xm])
    tr = [np.array([z_top, y_tr, lay.xm]), carina]
    _poly(grid, hu, tis, lungs, tr, r_tr + 1.6, T.AIRWAY_WALL)
    _poly(grid, hu, tis, lungs, tr, r_tr, T.AIRWAY_LUMEN)
    # pulmonary trunk and roots
    hz, hy, hx = lay.heart
    az, ay, ax = lay.heart_axes
    pa_base = np.array([hz + 0.7 * az, hy - 0.3 * ay, lay.xm + 18.0 * k])
    pa_start = np.array([u(lay.u_hilum) + 8.0, lay.yc - 0.1 * lay.b, lay.xm + 6.0 * k])
    _poly(grid, hu, tis, lungs, [pa_base, pa_start], 13.0 * k, T.PULMONARY_ARTERY)
    off = 36.0 * k
    artery = {
        1: np.array([u(lay.u_hilum), lay.yc + 0.02 * lay.b, lay.xm - off]),
        2: np.array([u(lay.u_hilum) + 8.0, lay.yc + 0.04 * lay.b, lay.xm + off]),
    }
    atrium = np.array([hz + 0.55 * az, hy + 0.5 * ay, hx - 0.35 * ax])
    vein = {
        1: np.array([u(lay.u_hilum) - 22.0, lay.yc - 0.02 * lay.b, lay.xm - off + 4.0]),
        2: np.array([u(lay.u_hilum) - 18.0, lay.yc, lay.xm + off - 2.0]),
    }
    return Hila(pa_start, artery, atrium, vein, carina, r_tr)


__all__ = ["Hila", "paint_mediastinum"]
