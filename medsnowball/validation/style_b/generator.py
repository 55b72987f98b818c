"""``generate_style_b``: anatomy -> airways and vessels -> hard negatives -> nodules ->
scanner. Evaluation only (held-out style "style_b"); never train or tune on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.volume import AcquisitionInfo, CTVolume, ImageGeometry
from medsnowball.synth.generator import Phantom
from medsnowball.synth.specs import NoduleTruth, PhantomTruth, phantom_uid
from medsnowball.synth.vessels import VesselTree
from medsnowball.validation.shapes import NoduleShape
from medsnowball.validation.style_b import lesions
from medsnowball.validation.style_b.anatomy import SliceFrame, paint_slice, rib_polylines
from medsnowball.validation.style_b.coarse import CoarseLung
from medsnowball.validation.style_b.config import DOSE_NOISE_HU, LOCATIONS, StyleBConfig
from medsnowball.validation.style_b.fissures import Fissures
from medsnowball.validation.style_b.layout import make_layout
from medsnowball.validation.style_b.mediastinum import paint_mediastinum
from medsnowball.validation.style_b.nodules import Scene, place_nodule
from medsnowball.validation.style_b.pulmonary import (
    calcify_cartilage,
    concat_intrapulmonary,
    paint_trees,
)
from medsnowball.validation.style_b.scanner import apply_scanner, pad_scan_circle
from medsnowball.validation.style_b.tissue import HU
from medsnowball.validation.style_b.tissue import BTissue as T
from medsnowball.validation.style_b.tubes import Grid, paint_tubes

log = logging.getLogger(__name__)


def _grid(config: StyleBConfig) -> Grid:
    nz, ny, nx = config.shape_zyx
    dz, dy, dx = config.spacing_zyx
    origin = (-(nz - 1) * dz - 55.0, -(ny - 1) * dy / 2, -(nx - 1) * dx / 2)
    return Grid(config.shape_zyx, config.spacing_zyx, origin)


def generate_style_b(config: StyleBConfig, shapes: Sequence[NoduleShape]) -> Phantom:
    """Generate one style-B chest CT with exact ground truth.

    Args:
        config: Grid, scanner and protocol of the case.
        shapes: Nodules to insert, one per shape; the location of each is drawn from
            ``config.location_weights``.

    Returns:
        A :class:`medsnowball.synth.generator.Phantom`: ``volume`` (HU, LPS identity
        geometry), ``lung_labels`` (uint8 ``(z, y, x)``, 1 right / 2 left), ``nodule_labels``
        (uint16, instance ids), ``truth``, ``tissue_labels`` (uint8 :class:`BTissue`
        classes, before the scanner), ``vessels`` (intrapulmonary vessel segments),
        ``timings_s``.
    """
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    ss = np.random.SeedSequence([int(config.seed), 0x5B, 0xB5])
    s_anat, s_tree, s_neg, s_nod, s_level, s_noise = ss.spawn(6)
    rng_anat = np.random.default_rng(s_anat)
    grid = _grid(config)
    lay = make_layout(config, grid, rng_anat)
    frame = SliceFrame(grid, lay)
    shape = config.shape_zyx
    tissue = np.empty(shape, dtype=np.uint8)
    lungs = np.empty(shape, dtype=np.uint8)
    hu = np.empty(shape, dtype=np.float32)
    lut = np.zeros(256, dtype=np.float32)
    for cls, hu_value in HU.items():
        lut[cls] = hu_value
    lut[T.LUNG] = lay.lung_hu
    y = grid.axis(1)
    grad = (lay.gradient_hu * np.clip((y - frame.y_ant) / (lay.y_vb - frame.y_ant), 0, 1)).astype(
        np.float32
    )
    fis = Fissures(lay, frame, grid, rng_anat)
    for k, z in enumerate(grid.axis(0)):
        tissue[k], lungs[k] = paint_slice(frame, lay, float(z))
        np.take(lut, tissue[k], out=hu[k])
        np.add(hu[k], grad[:, None], out=hu[k], where=tissue[k] == T.LUNG)
    hila = paint_mediastinum(grid, hu, tissue, lungs, lay)
    for pts, cart in rib_polylines(grid, lay, frame):
        r = np.full(len(pts) - 1, 5.0 * lay.k)
        shell = T.CARTILAGE if cart else T.CORTICAL_BONE
        a, b = pts[:-1], pts[1:]
        paint_tubes(grid, hu, tissue, a, b, r, r, HU[shell], shell, mode="over", clear=lungs)
        if not cart:  # bony rib: marrow inside the cortical shell
            m = r - 1.6
            paint_tubes(grid, hu, tissue, a, b, m, m, HU[T.MARROW], T.MARROW, mode="over")
    for k, z in enumerate(grid.axis(0)):
        fis.paint_slice(k, float(z), hu[k], tissue[k], lungs[k])
    times["anatomy"] = time.perf_counter() - t0

    t = time.perf_counter()
    coarse = CoarseLung(grid, lungs)
    rng_neg = np.random.default_rng(s_neg)
    negatives: dict[str, int] = {}
    if config.hard_negatives:
        if rng_neg.uniform() < 0.6:
            lesions.dependent_atelectasis(grid, hu, tissue, lungs, lay, rng_neg)
            negatives["atelectasis"] = 1
        if rng_neg.uniform() < 0.35:
            negatives["emphysema"] = lesions.emphysema(
                grid, hu, tissue, lungs, coarse, lay, rng_neg
            )
        if rng_neg.uniform() < 0.45:
            negatives["plaques"] = lesions.pleural_plaques(grid, hu, tissue, lungs, lay, rng_neg)
        if rng_neg.uniform() < 0.6:
            negatives["scars"] = lesions.scars(grid, hu, tissue, lungs, coarse, rng_neg)
    vessels, lumens = paint_trees(
        grid, hu, tissue, lungs, coarse, fis, hila, lay, np.random.default_rng(s_tree)
    )
    if config.hard_negatives:
        if rng_neg.uniform() < 0.4 and len(lumens):
            negatives["mucus"] = lesions.mucus_plugs(grid, hu, tissue, lungs, lumens, rng_neg)
        if rng_neg.uniform() < 0.5:
            negatives["cartilage_calcification"] = calcify_cartilage(
                grid, hu, tissue, lay, frame, rng_neg
            )
    times["trees_negatives"] = time.perf_counter() - t

    t = time.perf_counter()
    zs = np.flatnonzero(np.any(lungs > 0, axis=(1, 2)))
    zw = grid.axis(0)
    lo, hi = (float(zw[zs[0]]), float(zw[zs[-1]])) if zs.size else (float(zw[0]), float(zw[-1]))
    zone_bounds = (lo + 2 * (hi - lo) / 3, lo + (hi - lo) / 3)
    all_vessels = concat_intrapulmonary([tr for tr, _ in vessels])
    nodule_labels = np.zeros(shape, dtype=np.uint16)
    rng_nod = np.random.default_rng(s_nod)
    scene = Scene(
        grid,
        hu,
        tissue,
        lungs,
        nodule_labels,
        coarse,
        fis,
        all_vessels,
        lay,
        zone_bounds,
        rng_nod,
        config.max_placement_tries,
    )
    truths: list[NoduleTruth] = []
    skipped: list[str] = []
    w = np.asarray(config.location_weights) / np.sum(config.location_weights)
    for shp in shapes:
        loc = str(rng_nod.choice(LOCATIONS, p=w))
        res = place_nodule(scene, shp, loc, len(truths) + 1)
        if isinstance(res, str):
            log.warning("style_b seed %d: %s; skipped.", config.seed, res)
            skipped.append(res)
        else:
            truths.append(res)
    times["nodules"] = time.perf_counter() - t

    t = time.perf_counter()
    if config.noise_hu is None:
        noise = float(np.random.default_rng(s_level).uniform(*DOSE_NOISE_HU[config.dose]))
    else:
        noise = float(config.noise_hu)
    apply_scanner(hu, config.spacing_zyx, config.kernel, noise, config.thickness_mm, s_noise)
    if config.padding_hu is not None:
        pad_scan_circle(hu, config.spacing_zyx, float(config.padding_hu))
    arr: NDArray[np.float32] | NDArray[np.int16] = hu
    if config.dtype == "int16":
        arr = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    times["scanner"] = time.perf_counter() - t

    vox_ml = float(np.prod(config.spacing_zyx)) / 1000.0
    cfg = config.to_dict()
    cfg.update(noise_hu_effective=round(noise, 3), hard_negative_counts=negatives)
    truth = PhantomTruth(
        nodules=tuple(truths),
        right_lung_ml=float(np.count_nonzero(lungs == 1) * vox_ml),
        left_lung_ml=float(np.count_nonzero(lungs == 2) * vox_ml),
        seed=int(config.seed),
        config=cfg,
        zone_bounds_z=zone_bounds,
        skipped=tuple(skipped),
    )
    origin_lps = (grid.origin[2], grid.origin[1], grid.origin[0])
    volume = CTVolume(
        array=arr,
        geometry=ImageGeometry(shape, config.spacing_zyx, origin_lps, np.eye(3)),
        source=f"medsnowball.validation.style_b seed={config.seed}",
        study_uid=phantom_uid(cfg, "study"),
        series_uid=phantom_uid(cfg, "series"),
        modality="CT",
        acquisition=AcquisitionInfo(
            manufacturer="medsnowball-validation",
            model="style_b phantom v1",
            kernel=config.kernel.upper(),
            slice_thickness_mm=config.thickness_mm,
            kvp=120.0 if config.dose == "standard" else 100.0,
            contrast=False,
        ),
    )
    tree = VesselTree(
        p0=all_vessels.p0,
        p1=all_vessels.p1,
        r0=all_vessels.r0,
        r1=all_vessels.r1,
        side=np.concatenate([np.full(len(tr) - 1, s, dtype=np.int8) for tr, s in vessels])
        if vessels
        else np.zeros(0, dtype=np.int8),
    )
    times["total"] = time.perf_counter() - t0
    return Phantom(volume, lungs, nodule_labels, truth, tissue, tree, times)


__all__ = ["generate_style_b"]
