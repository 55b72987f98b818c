"""Tubular mediastinal structures: trachea, main bronchi, aorta, pulmonary arteries,
superior vena cava, pulmonary veins and oesophagus.

Each is a chain of tapered capsules (:func:`medsnowball.synth.shapes.capsule_sdf`). A tube
carves a margin of mediastinal fat out of the lungs around it, so the lungs wrap around
the great vessels and the hila get their notches. The returned :class:`HilumRoots` are
where the pulmonary vessel trees start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.synth.anatomy import Anatomy
from medsnowball.synth.shapes import capsule_sdf
from medsnowball.synth.tissues import Tissue

_T = Tissue
_PROTECTED = np.zeros(256, dtype=bool)
for _t in (
    _T.CORTICAL_BONE,
    _T.MARROW,
    _T.DISC,
    _T.CSF,
    _T.AIR,
    _T.TABLE_CORE,
    _T.TABLE_SHELL,
    _T.SKIN,
    _T.FAT,
):
    _PROTECTED[int(_t)] = True


@dataclass(frozen=True)
class HilumRoots:
    """Start points of the vessel trees, world mm (z, y, x), per side (1 right, 2 left).

    Attributes:
        artery: Root of the pulmonary-artery tree of each side.
        vein: Root of the pulmonary-vein tree of each side.
        bronchus: End of each main bronchus.
    """

    artery: dict[int, NDArray[np.float64]]
    vein: dict[int, NDArray[np.float64]]
    bronchus: dict[int, NDArray[np.float64]]


def _tube(
    anat: Anatomy,
    tissue: NDArray[np.uint8],
    lungs: NDArray[np.uint8],
    pts_xyu: list[tuple[float, float, float]],
    radii: list[float],
    label: Tissue,
    carve_mm: float,
    lumen: tuple[Tissue, float] | None = None,
) -> None:
    """Draw a polyline tube given as (x, y, u) points with per-point radii."""
    zyx = [np.array([anat.z_of_u(u), y, x]) for x, y, u in pts_xyu]
    for i in range(len(zyx) - 1):
        res = capsule_sdf(anat.grid, zyx[i], zyx[i + 1], radii[i], radii[i + 1], pad=carve_mm)
        if res is None:
            continue
        box, sdf = res[0], res[1]
        t = tissue[box]
        lg = lungs[box]
        carve = (sdf < carve_mm) & (lg > 0)
        lg[carve] = 0
        t[carve] = _T.MEDIASTINAL_FAT
        inside = (sdf < 0) & ~_PROTECTED[t]
        t[inside] = label
        if lumen is not None:
            lumen_label, wall = lumen
            t[(sdf < -wall) & inside] = lumen_label


def draw_mediastinum(
    anat: Anatomy, tissue: NDArray[np.uint8], lungs: NDArray[np.uint8], rng: np.random.Generator
) -> HilumRoots:
    """Draw the mediastinal tubes in place.

    Args:
        anat: Anatomy parameters.
        tissue: uint8 tissue classes ``(z, y, x)``, modified in place.
        lungs: uint8 lung labels ``(z, y, x)``, modified in place (carved).
        rng: Random generator (anatomy stream).

    Returns:
        Roots of the pulmonary vessel trees and bronchi.
    """
    k = anat.k
    xc, ytr, yvb, uc = anat.xc, anat.y_tr, anat.y_vb, anat.u_carina
    carve = 3.0 * k
    hx, hy, hu, ha, hb, _, _ = anat.heart
    # oesophagus (behind the trachea, slightly left)
    _tube(
        anat,
        tissue,
        lungs,
        [(xc + 6 * k, ytr + 18 * k, 1.05), (xc + 10 * k, ytr + 20 * k, 0.2)],
        [7 * k, 7 * k],
        _T.ESOPHAGUS,
        carve,
        (_T.AIRWAY_LUMEN, 5.5 * k),
    )
    # aorta: ascending, arch, descending
    aorta = [
        (hx - 0.45 * ha, hy - 0.1 * hb, hu + 0.12),
        (xc - 10 * k, ytr - 34 * k, 0.74),
        (xc - 3 * k, ytr - 26 * k, 0.79),
        (xc + 12 * k, ytr - 12 * k, 0.815),
        (xc + 25 * k, ytr + 4 * k, 0.80),
        (xc + 25 * k, yvb - 14 * k, 0.76),
        (xc + 24 * k, yvb - 13 * k, 0.3),
        (xc + 14 * k, yvb - 18 * k, -0.05),
    ]
    _tube(
        anat,
        tissue,
        lungs,
        aorta,
        [15 * k, 15 * k, 14 * k, 13 * k, 12.5 * k, 12 * k, 11.5 * k, 11 * k],
        _T.AORTA,
        carve,
    )
    # superior vena cava into the right atrium
    _tube(
        anat,
        tissue,
        lungs,
        [(xc - 30 * k, ytr - 24 * k, 0.9), (xc - 30 * k, ytr - 26 * k, 0.5)],
        [9 * k, 10 * k],
        _T.VEIN,
        carve,
    )
    # pulmonary trunk and arteries to the hila
    bif = (xc + 14 * k, ytr - 24 * k, 0.6)
    h_r = (xc - 38 * k, ytr - 8 * k, 0.56)
    h_l = (xc + 42 * k, ytr + 4 * k, 0.6)
    _tube(
        anat,
        tissue,
        lungs,
        [(hx - 0.1 * ha, hy - 0.6 * hb, hu + 0.1), bif],
        [13 * k, 12 * k],
        _T.PULMONARY_ARTERY,
        carve,
    )
    _tube(
        anat,
        tissue,
        lungs,
        [bif, (xc - 8 * k, ytr - 14 * k, 0.58), h_r],
        [10 * k, 9 * k, 8 * k],
        _T.PULMONARY_ARTERY,
        carve,
    )
    _tube(
        anat,
        tissue,
        lungs,
        [bif, (xc + 30 * k, ytr - 8 * k, 0.63), h_l],
        [10 * k, 9 * k, 8 * k],
        _T.PULMONARY_ARTERY,
        carve,
    )
    # pulmonary veins into the left atrium (posterior heart)
    la = (hx - 0.15 * ha, hy + 0.55 * hb, hu + 0.06)
    v_r = (xc - 36 * k, ytr + 14 * k, 0.5)
    v_l = (xc + 40 * k, ytr + 16 * k, 0.52)
    for v in (v_r, v_l):
        _tube(anat, tissue, lungs, [la, v], [9 * k, 7 * k], _T.VEIN, carve)
    # trachea and main bronchi (air lumen inside a soft-tissue wall)
    b_r = (xc - 36 * k, ytr + 4 * k, uc - 0.06)
    b_l = (xc + 44 * k, ytr + 10 * k, uc - 0.095)
    wall = (_T.AIRWAY_LUMEN, 2.0 * k)
    _tube(
        anat,
        tissue,
        lungs,
        [(xc, ytr - 10 * k, 1.05), (xc, ytr, uc)],
        [9.5 * k, 9 * k],
        _T.AIRWAY_WALL,
        carve,
        wall,
    )
    _tube(
        anat, tissue, lungs, [(xc, ytr, uc), b_r], [7.5 * k, 6.5 * k], _T.AIRWAY_WALL, carve, wall
    )
    _tube(anat, tissue, lungs, [(xc, ytr, uc), b_l], [7 * k, 6 * k], _T.AIRWAY_WALL, carve, wall)

    def zyx(p: tuple[float, float, float]) -> NDArray[np.float64]:
        return np.array([anat.z_of_u(p[2]), p[1], p[0]])

    return HilumRoots(
        artery={1: zyx(h_r), 2: zyx(h_l)},
        vein={1: zyx(v_r), 2: zyx(v_l)},
        bronchus={1: zyx(b_r), 2: zyx(b_l)},
    )


__all__ = ["HilumRoots", "draw_mediastinum"]
