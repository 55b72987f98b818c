"""Placing :class:`~medsnowball.validation.shapes.NoduleShape` nodules into a style-B chest.

A nodule's rendered occupancy is centred on a voxel chosen by its location kind:

* ``parenchymal``: >= 5 mm (coarse distance) from any non-lung voxel, and for the first
  60 % of the tries not touching vessels of radius >= 1.5 mm or airways;
* ``juxtapleural``: on a ray from inside the lung away from the mediastinum, half an
  equivalent radius inside the costal pleura, so the nodule abuts the chest wall (its
  part beyond the pleura is cut off);
* ``juxtavascular``: beside a vessel of radius 1-3.5 mm, touching it;
* ``perifissural``: centred on (within 0.3 radii of) a fissure, touching it.

HU are blended by occupancy and only *raise* what is there (``hu += occ * max(v - hu,
0)``), so vessels stay visible through ground glass; part-solid = ground glass, then the
solid core. The truth mask is occupancy >= 0.5 inside the nodule's lung, not touching
another nodule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.synth.specs import NoduleTruth
from medsnowball.validation.shapes import NoduleShape
from medsnowball.validation.style_b.coarse import CoarseLung
from medsnowball.validation.style_b.fissures import Fissures
from medsnowball.validation.style_b.layout import Layout
from medsnowball.validation.style_b.tissue import CHEST_WALL
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.trees import Segments
from medsnowball.validation.style_b.tubes import Grid

#: (base HU range, texture SD, clip range) per component.
SOLID_HU = ((-10.0, 45.0), 12.0, (-50.0, 60.0))
GGO_HU = ((-680.0, -480.0), 35.0, (-750.0, -350.0))
_AVOID = np.zeros(256, dtype=bool)
_AVOID[[T.LUNG_VESSEL, T.AIRWAY_WALL, T.AIRWAY_LUMEN]] = True
_VESSEL = np.zeros(256, dtype=bool)
_VESSEL[[T.LUNG_VESSEL, T.SMALL_VESSEL]] = True
_WALL = np.zeros(256, dtype=bool)
_WALL[list(CHEST_WALL)] = True


@dataclass
class Scene:
    """Everything the placer reads and writes (arrays are modified in place)."""

    grid: Grid
    hu: NDArray[np.float32]
    tissue: NDArray[np.uint8]
    lungs: NDArray[np.uint8]
    labels: NDArray[np.uint16]
    coarse: CoarseLung
    fissures: Fissures
    vessels: Segments
    lay: Layout
    zone_bounds: tuple[float, float]
    rng: np.random.Generator
    tries: int


def _texture(
    rng: np.random.Generator, shape: tuple[int, ...], sp: tuple[float, float, float], spec: tuple
) -> NDArray[np.float32]:
    (lo, hi), sd, (cmin, cmax) = spec
    field = ndimage.gaussian_filter(rng.standard_normal(shape), [1.2 / s for s in sp])
    field *= sd / (field.std() + 1e-6)
    return np.clip(rng.uniform(lo, hi) + field, cmin, cmax).astype(np.float32)


def _candidate(
    sc: Scene, location: str, side: int, r_eq: float, r_max: float
) -> NDArray[np.float64] | None:
    rng, _lay = sc.rng, sc.lay
    if location == "parenchymal":
        p = sc.coarse.sample(side, 1, rng, min_dist_mm=r_max + 5.0)
        return p[0] if len(p) else None
    if location == "perifissural":
        p = sc.coarse.sample(side, 1, rng, min_dist_mm=r_max + 2.0)
        if not len(p):
            return None
        names = ["obl1", "hor"] if side == 1 else ["obl2"]
        name = names[int(rng.integers(len(names)))]
        z = float(sc.fissures.surface(name, p[:, 1], p[:, 2])[0])
        return np.array([z + rng.uniform(-0.3, 0.3) * r_eq, p[0, 1], p[0, 2]])
    if location == "juxtavascular":
        ok = np.flatnonzero((sc.vessels.r1 >= 1.0) & (sc.vessels.r1 <= 3.5))
        if ok.size == 0:
            return None
        i = int(rng.choice(ok))
        d = sc.vessels.p1[i] - sc.vessels.p0[i]
        d /= np.linalg.norm(d) + 1e-12
        v = rng.normal(size=3)
        v -= (v @ d) * d
        v /= np.linalg.norm(v) + 1e-12
        p = sc.vessels.p0[i] + rng.uniform(0.1, 0.9) * (sc.vessels.p1[i] - sc.vessels.p0[i])
        r = float(sc.vessels.r0[i])
        return p + v * (r + 0.8 * r_eq)
    # juxtapleural: march outwards from inside the lung, away from the mediastinum
    p = sc.coarse.sample(side, 1, rng, min_dist_mm=8.0)
    if not len(p):
        return None
    phi = (np.pi if side == 1 else 0.0) + rng.uniform(-1.3, 1.3)
    direction = np.array([0.0, np.sin(phi), np.cos(phi)])
    step = 0.5 * min(sc.grid.spacing[1:])
    pos = p[0].copy()
    for _ in range(int(400 / step)):
        nxt = pos + step * direction
        ix = tuple(int(v) for v in np.rint(sc.grid.to_index(nxt)))
        if min(ix) < 0 or any(a >= b for a, b in zip(ix, sc.grid.shape, strict=True)):
            return None
        if sc.lungs[ix] != side:
            if not _WALL[sc.tissue[ix]]:
                return None
            return pos - direction * 0.5 * r_eq
        pos = nxt
    return None


def place_nodule(sc: Scene, shape: NoduleShape, location: str, nid: int) -> NoduleTruth | str:
    """Place one nodule; returns its truth or a reason why it could not be placed.

    Args:
        sc: The scene (modified in place on success).
        shape: The nodule shape.
        location: Location kind (see the module docstring).
        nid: Instance id written into ``sc.labels``.
    """
    sp = sc.grid.spacing
    occ = shape.render(sp)
    solid = shape.render_solid(sp) if shape.type == "part_solid" else None
    full = occ >= 0.5
    if not full.any():
        return f"{shape.source} {shape.type} nodule renders empty at {sp}"
    n = np.asarray(occ.shape)
    half = (n - 1) / 2.0
    idx = np.argwhere(full)
    r_max = float(np.max(np.linalg.norm((idx - half) * np.asarray(sp), axis=1))) + 0.5 * max(sp)
    r_eq = float((3.0 * full.sum() * np.prod(sp) / (4.0 * np.pi)) ** (1 / 3))
    near = ndimage.binary_dilation(occ > 0.02, iterations=2)
    for attempt in range(sc.tries):
        side = int(sc.rng.integers(1, 3))
        centre = _candidate(sc, location, side, r_eq, r_max)
        if centre is None:
            continue
        start = np.rint(sc.grid.to_index(centre) - half).astype(int)
        if np.any(start < 0) or np.any(start + n > np.asarray(sc.grid.shape)):
            continue
        box = tuple(slice(int(a), int(a + b)) for a, b in zip(start, n, strict=True))
        in_lung = sc.lungs[box] == side
        mask = full & in_lung
        frac = mask.sum() / full.sum()
        if np.any(near & (sc.labels[box] > 0)):
            continue
        tis = sc.tissue[box]
        grown = ndimage.binary_dilation(mask, iterations=1)
        if location == "juxtapleural":
            if frac < 0.5 or not np.any(grown & _WALL[tis]):
                continue
        elif frac < 0.999:
            continue
        if location == "parenchymal" and attempt < 0.6 * sc.tries and np.any(near & _AVOID[tis]):
            continue
        if location == "juxtavascular" and not np.any(grown & _VESSEL[tis]):
            continue
        if location == "perifissural" and not np.any(grown & (tis == T.FISSURE)):
            continue
        return _insert(sc, shape, location, nid, side, box, occ, solid, in_lung, mask)
    return f"{shape.source} {shape.type} {location} nodule ({r_eq * 2:.1f} mm) not placed"


def _insert(
    sc: Scene,
    shape: NoduleShape,
    location: str,
    nid: int,
    side: int,
    box: tuple[slice, ...],
    occ: NDArray[np.float32],
    solid: NDArray[np.float32] | None,
    in_lung: NDArray[np.bool_],
    mask: NDArray[np.bool_],
) -> NoduleTruth:
    sp = sc.grid.spacing
    hub = sc.hu[box]
    o = occ * in_lung
    spec = SOLID_HU if shape.type == "solid" else GGO_HU
    v = _texture(sc.rng, occ.shape, sp, spec)
    hub += o * np.maximum(v - hub, 0.0)
    solid_mask = mask if shape.type == "solid" else np.zeros_like(mask)
    if solid is not None:
        vs = _texture(sc.rng, occ.shape, sp, SOLID_HU)
        hub += solid * in_lung * np.maximum(vs - hub, 0.0)
        solid_mask = (solid >= 0.5) & mask
    sc.labels[box][mask] = nid
    tis = sc.tissue[box]
    tis[mask & ~_VESSEL[tis]] = T.NODULE
    vox = float(np.prod(sp))
    idx = np.argwhere(mask).mean(axis=0) + np.array([s.start for s in box])
    world = sc.grid.to_world(idx)
    volume = float(mask.sum() * vox)
    z = float(world[0])
    zone = "upper" if z >= sc.zone_bounds[0] else ("middle" if z >= sc.zone_bounds[1] else "lower")
    sd = float((6.0 * solid_mask.sum() * vox / np.pi) ** (1 / 3))
    return NoduleTruth(
        id=nid,
        center_lps=(float(world[2]), float(world[1]), float(world[0])),
        center_zyx=(float(idx[0]), float(idx[1]), float(idx[2])),
        diameter_mm=round(float((6.0 * volume / np.pi) ** (1 / 3)), 3),
        volume_mm3=volume,
        type=shape.type,
        solid_diameter_mm=round(sd, 3),
        location=location,
        side="right" if side == 1 else "left",
        zone=zone,
        calcified=False,
        mean_hu=round(float(hub[mask].mean()), 1),
    )


__all__ = ["GGO_HU", "SOLID_HU", "Scene", "place_nodule"]
