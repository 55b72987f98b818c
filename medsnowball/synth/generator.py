"""Phantom generation: anatomy -> tubes -> vessel trees -> nodules -> noise -> blur.

Geometry: identity direction; slice ``k = 0`` is the most **inferior** slice (world z
increases with ``k``); x and y are centred on the field of view; by default slice 0 lies
at ``z = -(nz - 1) * dz - 30`` mm, like a scanner's table positions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.core.volume import AcquisitionInfo, CTVolume, ImageGeometry
from medsnowball.synth.anatomy import SliceMaps, fill_slice, make_anatomy
from medsnowball.synth.mediastinum import draw_mediastinum
from medsnowball.synth.nodules import NodulePlacer
from medsnowball.synth.shapes import Grid
from medsnowball.synth.specs import NoduleTruth, PhantomConfig, PhantomTruth, phantom_uid
from medsnowball.synth.tissues import (
    VESSEL_HU,
    VESSEL_HU_CONTRAST,
    Tissue,
    tissue_hu_table,
)
from medsnowball.synth.vessels import VesselTree, draw_vessels, grow_vessel_trees

log = logging.getLogger(__name__)

_PAD_VALUE = -2048.0


@dataclass(frozen=True, eq=False)
class Phantom:
    """A generated CT with its exact ground truth.

    Attributes:
        volume: The CT (HU, float32 or int16), LPS geometry with identity direction.
        lung_labels: uint8 ``(z, y, x)``: 0 outside, 1 right lung, 2 left lung (vessels,
            airways and nodules inside the lungs are inside).
        nodule_labels: uint16 ``(z, y, x)`` instance mask, value = ``NoduleTruth.id``.
        truth: Nodule and lung ground truth.
        tissue_labels: uint8 ``(z, y, x)`` tissue classes
            (:class:`medsnowball.synth.tissues.Tissue`), before blur.
        vessels: The pulmonary vessel segments.
        timings_s: Seconds per generation step.
    """

    volume: CTVolume
    lung_labels: NDArray[np.uint8]
    nodule_labels: NDArray[np.uint16]
    truth: PhantomTruth
    tissue_labels: NDArray[np.uint8] = field(repr=False)
    vessels: VesselTree = field(repr=False)
    timings_s: dict[str, float] = field(default_factory=dict)


def default_origin(
    shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Scanner-like origin (LPS x, y, z) of voxel (0, 0, 0): x/y centred, z table-like."""
    nz, ny, nx = shape_zyx
    dz, dy, dx = spacing_zyx
    return (-(nx - 1) * dx / 2, -(ny - 1) * dy / 2, -(nz - 1) * dz - 30.0)


def _gauss_weights(sigma_vox: float) -> NDArray[np.float32]:
    """Normalised Gaussian taps; taps below 0.5 % of the total are dropped."""
    if sigma_vox < 0.15:
        return np.ones(1, dtype=np.float32)
    r = max(1, int(np.ceil(3.0 * sigma_vox)))
    x = np.arange(-r, r + 1)
    w = np.exp(-0.5 * (x / sigma_vox) ** 2)
    w /= w.sum()
    keep = w >= 0.005
    w = w[keep]
    return (w / w.sum()).astype(np.float32)


def _blur_and_noise(hu: NDArray[np.float32], config: PhantomConfig) -> None:
    """Add white noise, then blur with a Gaussian of sigma ``blur_mm`` (in place).

    The blur is the scanner's point-spread function and also gives the noise its spatial
    correlation (as the reconstruction kernel does). The white noise is scaled so that
    the filtered noise has standard deviation ``noise_hu`` exactly. White noise of slice
    ``k`` comes from ``SeedSequence([seed, 7, k])``, so it does not depend on anything
    else. Slices are filtered in-plane one at a time, then combined along z through a
    small ring buffer, so the extra memory is a few slices.
    """
    nz = hu.shape[0]
    sig = [config.blur_mm / s for s in config.spacing_zyx]
    wz, wy, wx = (_gauss_weights(s) for s in sig)
    gain = float(np.sqrt(np.sum(wz**2) * np.sum(wy**2) * np.sum(wx**2)))
    noise_scale = np.float32(config.noise_hu / gain) if config.noise_hu > 0 else None
    rz = len(wz) // 2
    ring: dict[int, NDArray[np.float32]] = {}

    def prepared(k: int) -> NDArray[np.float32]:
        k = min(max(k, 0), nz - 1)  # "nearest" boundary along z
        if k not in ring:
            sl = hu[k].copy()
            if noise_scale is not None:
                g = np.random.Generator(
                    np.random.PCG64(np.random.SeedSequence([config.seed, 7, k]))
                )
                sl += noise_scale * g.standard_normal(sl.shape, dtype=np.float32)
            if len(wy) > 1:
                ndimage.correlate1d(sl, wy, axis=0, output=sl, mode="nearest")
            if len(wx) > 1:
                ndimage.correlate1d(sl, wx, axis=1, output=sl, mode="nearest")
            ring[k] = sl
        return ring[k]

    for k in range(nz):
        for j in range(k - rz, k + rz + 1):
            prepared(j)
        out = hu[k]
        np.multiply(ring[min(max(k - rz, 0), nz - 1)], wz[0], out=out)
        for t in range(1, len(wz)):
            out += wz[t] * ring[min(max(k - rz + t, 0), nz - 1)]
        for old in [key for key in ring if key < k - rz]:
            del ring[old]


def generate_phantom(config: PhantomConfig) -> Phantom:
    """Generate a chest CT phantom with exact ground truth.

    Args:
        config: What to generate (grid, seed, nodules, image quality).

    Returns:
        The phantom: CT volume, lung labels, nodule instance labels, truth.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    nz, ny, nx = config.shape_zyx
    origin = config.origin_lps or default_origin(config.shape_zyx, config.spacing_zyx)
    grid = Grid(config.shape_zyx, config.spacing_zyx, tuple(float(v) for v in origin))  # type: ignore[arg-type]
    ss = np.random.SeedSequence(config.seed)
    rng_anat, rng_vessel, rng_nod = (np.random.default_rng(s) for s in ss.spawn(3))

    anat = make_anatomy(grid, config.body_fraction, rng_anat)
    maps = SliceMaps(anat)
    tissue = np.empty(config.shape_zyx, dtype=np.uint8)
    lungs = np.empty(config.shape_zyx, dtype=np.uint8)
    zs = grid.axis(0)
    for kz in range(nz):
        u = float(anat.u_of_z(float(zs[kz])))
        tissue[kz], lungs[kz] = fill_slice(anat, maps, u)
    timings["anatomy"] = time.perf_counter() - t_start

    t = time.perf_counter()
    roots = draw_mediastinum(anat, tissue, lungs, rng_anat)
    timings["mediastinum"] = time.perf_counter() - t

    t = time.perf_counter()
    lut = tissue_hu_table(config.contrast)
    hu = np.empty(config.shape_zyx, dtype=np.float32)
    y_ant, y_post = anat.yc_c - anat.b_c, anat.yc_c + anat.b_c
    grad = np.interp(grid.axis(1), [y_ant, y_post], [-20.0, 25.0]).astype(np.float32)
    n_right = np.zeros(nz, dtype=np.int64)
    n_left = np.zeros(nz, dtype=np.int64)
    for kz in range(nz):
        np.take(lut, tissue[kz], out=hu[kz])
        np.add(hu[kz], grad[:, None], out=hu[kz], where=tissue[kz] == Tissue.LUNG)
        n_right[kz] = np.count_nonzero(lungs[kz] == 1)
        n_left[kz] = np.count_nonzero(lungs[kz] == 2)
    timings["hu"] = time.perf_counter() - t

    t = time.perf_counter()
    tree = grow_vessel_trees(anat, lungs, roots, rng_vessel, config.vessel_density)
    draw_vessels(grid, tree, hu, tissue, VESSEL_HU_CONTRAST if config.contrast else VESSEL_HU)
    timings["vessels"] = time.perf_counter() - t

    t = time.perf_counter()
    nodule_labels = np.zeros(config.shape_zyx, dtype=np.uint16)
    has_lung = np.flatnonzero(n_right + n_left)
    if has_lung.size:
        lung_z = (float(zs[has_lung[0]]), float(zs[has_lung[-1]]))
    else:
        lung_z = (float(zs[0]), float(zs[-1]))
    height = lung_z[1] - lung_z[0]
    zone_bounds = (lung_z[0] + 2 * height / 3, lung_z[0] + height / 3)
    truths: list[NoduleTruth] = []
    skipped: list[str] = []
    if config.nodules:
        placer = NodulePlacer(
            grid,
            hu,
            tissue,
            lungs,
            nodule_labels,
            tree,
            zone_bounds,
            lung_z,
            rng_nod,
            config.max_placement_tries,
        )
        for spec in config.nodules:
            nid = len(truths) + 1
            res = placer.place(spec, nid)
            if isinstance(res, str):
                log.warning("Phantom seed %d: %s; skipped.", config.seed, res)
                skipped.append(res)
                continue
            idx = np.argwhere(res.mask) + np.array([s.start for s in res.box])
            czyx = idx.mean(axis=0)
            clps = grid.to_world(czyx)[::-1]
            truths.append(
                NoduleTruth(
                    id=nid,
                    center_lps=(float(clps[0]), float(clps[1]), float(clps[2])),
                    center_zyx=(float(czyx[0]), float(czyx[1]), float(czyx[2])),
                    diameter_mm=float(spec.diameter_mm),
                    volume_mm3=float(res.mask.sum() * placer.vox),
                    type=spec.type,
                    solid_diameter_mm=float(res.solid_diameter_mm),
                    location=spec.location,
                    side="right" if res.side == 1 else "left",
                    zone=placer.zone_of(float(clps[2])),
                    calcified=bool(spec.calcified),
                    mean_hu=round(res.mean_hu, 1),
                )
            )
    timings["nodules"] = time.perf_counter() - t

    t = time.perf_counter()
    _blur_and_noise(hu, config)
    timings["blur_noise"] = time.perf_counter() - t

    if config.fov_padding:
        cy, cx = (ny - 1) / 2, (nx - 1) / 2
        rr = min(ny * config.spacing_zyx[1], nx * config.spacing_zyx[2]) / 2
        yy = (np.arange(ny) - cy)[:, None] * config.spacing_zyx[1]
        xx = (np.arange(nx) - cx)[None, :] * config.spacing_zyx[2]
        hu[:, yy**2 + xx**2 > rr * rr] = _PAD_VALUE
    if config.dtype == "int16":
        arr: NDArray[np.float32] | NDArray[np.int16] = np.clip(np.rint(hu), -2048, 3071).astype(
            np.int16
        )
    else:
        arr = hu

    vox_ml = float(np.prod(config.spacing_zyx)) / 1000.0
    truth = PhantomTruth(
        nodules=tuple(truths),
        right_lung_ml=float(n_right.sum() * vox_ml),
        left_lung_ml=float(n_left.sum() * vox_ml),
        seed=int(config.seed),
        config=config.to_dict(),
        zone_bounds_z=zone_bounds,
        skipped=tuple(skipped),
    )
    geometry = ImageGeometry(config.shape_zyx, config.spacing_zyx, grid.origin_lps, np.eye(3))
    volume = CTVolume(
        array=arr,
        geometry=geometry,
        source=f"medsnowball.synth seed={config.seed}",
        study_uid=phantom_uid(config.to_dict(), "study"),
        series_uid=phantom_uid(config.to_dict(), "series"),
        modality="CT",
        acquisition=AcquisitionInfo(
            manufacturer="medsnowball",
            model="synthetic chest phantom v1",
            kernel="SYNTH",
            slice_thickness_mm=float(config.spacing_zyx[0]),
            kvp=120.0,
            contrast=bool(config.contrast),
        ),
    )
    timings["total"] = time.perf_counter() - t_start
    return Phantom(volume, lungs, nodule_labels, truth, tissue, tree, timings)


__all__ = ["Phantom", "default_origin", "generate_phantom"]
