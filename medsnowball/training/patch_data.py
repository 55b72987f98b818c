"""Patch samples for training: positives at nodule centres, negatives elsewhere in the lung.

Positives are cut at the truth centres (plus jittered copies, since detector
candidates are never exactly centred). Negatives come, in order of preference, from
detector candidates listed in the datalist item (``"candidates": [[x, y, z], ...]``
world mm; see :func:`add_detector_candidates`) that match no nodule, else from random
lung points: half on dense lung voxels (vessels, fissures -- the hard negatives of a
nodule detector), a quarter on the pleural surface and a quarter anywhere in the lung.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.volume import CTVolume
from medsnowball.models.config import PatchSpec
from medsnowball.models.patches import extract_patches

logger = logging.getLogger(__name__)

#: HU above which a lung voxel counts as "dense" (vessel, wall) for hard negatives.
DENSE_HU = -500.0


@dataclass(frozen=True, eq=False)
class TrainingCase:
    """One scan with its nodule truth, ready for patch sampling.

    Attributes:
        volume: The CT.
        boxes: ``(n, 6)`` world LPS mm ``[x, y, z, w, h, d]`` per nodule.
        seg: Optional nodule instance labels ``(z, y, x)`` on the CT grid.
        seg_labels: Label value of each box in ``seg``.
        lung: Optional boolean lung mask ``(z, y, x)``.
        candidates_lps: ``(m, 3)`` detector candidate positions (world mm), may be empty.
        case_id: Identifier (no patient data).
        candidate_scores: ``(m,)`` detector scores of ``candidates_lps`` (optional; used to
            pick the highest-scoring false positives as hard negatives).
    """

    volume: CTVolume
    boxes: NDArray[np.float64]
    seg: NDArray[Any] | None = None
    seg_labels: tuple[int, ...] = ()
    lung: NDArray[np.bool_] | None = None
    candidates_lps: NDArray[np.float64] | None = None
    case_id: str = ""
    candidate_scores: NDArray[np.float64] | None = None

    @property
    def centers_zyx(self) -> NDArray[np.float64]:
        """Nodule centres as fractional voxel indices ``(n, 3)``."""
        if len(self.boxes) == 0:
            return np.zeros((0, 3))
        return np.atleast_2d(self.volume.world_to_index(self.boxes[:, :3]))

    @property
    def diameters_mm(self) -> NDArray[np.float64]:
        """Nodule diameters ``(n,)`` (mean of the box sides)."""
        if len(self.boxes) == 0:
            return np.zeros((0,))
        return np.asarray(self.boxes[:, 3:].mean(axis=1))


def load_training_case(item: Mapping[str, Any]) -> TrainingCase:
    """Load the images of one datalist item.

    Raises:
        FileNotFoundError / CorruptFileError: From the image loaders.
    """
    from medsnowball.io import load_ct, load_image

    volume = load_ct(item["image"])
    boxes = np.asarray(item.get("box", []), dtype=np.float64).reshape(-1, 6)
    seg = lung = None
    if item.get("seg"):
        seg = np.asarray(load_image(item["seg"]).array)
    if item.get("lung"):
        lung = np.asarray(load_image(item["lung"]).array) > 0
    cands = np.asarray(item.get("candidates", []), dtype=np.float64).reshape(-1, 3)
    return TrainingCase(
        volume=volume,
        boxes=boxes,
        seg=seg,
        seg_labels=tuple(int(v) for v in item.get("seg_label", range(1, len(boxes) + 1))),
        lung=lung,
        candidates_lps=cands,
        case_id=str(item.get("case_id", "")),
    )


def _lung_mask(case: TrainingCase) -> NDArray[np.bool_]:
    if case.lung is not None:
        return case.lung
    try:
        segment_lungs = importlib.import_module("medsnowball.lung").segment_lungs
    except (ImportError, AttributeError):
        logger.warning("medsnowball.lung unavailable: negatives drawn from HU < -400 voxels")
        return np.asarray(case.volume.array) < -400
    return np.asarray(segment_lungs(case.volume).mask)


def _far_from_nodules(
    case: TrainingCase, points_zyx: NDArray[np.float64], margin_mm: float
) -> NDArray[np.bool_]:
    """True for points farther than (radius + margin) from every nodule centre."""
    if len(case.boxes) == 0 or len(points_zyx) == 0:
        return np.ones(len(points_zyx), dtype=bool)
    sp = np.asarray(case.volume.spacing_zyx)
    d = (points_zyx[:, None, :] - case.centers_zyx[None, :, :]) * sp
    dist = np.sqrt((d**2).sum(axis=-1))
    return np.asarray(np.all(dist > case.diameters_mm[None, :] / 2 + margin_mm, axis=1))


def candidate_hits(case: TrainingCase) -> NDArray[np.bool_]:
    """True for detector candidates inside a nodule (LUNA16 hit: distance <= radius)."""
    if case.candidates_lps is None or len(case.candidates_lps) == 0:
        return np.zeros(0, dtype=bool)
    if len(case.boxes) == 0:
        return np.zeros(len(case.candidates_lps), dtype=bool)
    d = np.linalg.norm(case.candidates_lps[:, None, :] - case.boxes[None, :, :3], axis=-1)
    return np.asarray(np.any(d <= case.diameters_mm[None, :] / 2, axis=1))


def hard_negative_centers(
    case: TrainingCase, n: int, margin_mm: float = 3.0
) -> NDArray[np.float64]:
    """The ``n`` highest-scoring detector candidates that match no nodule ``(m, 3)`` (z, y, x).

    Candidates closer than radius + ``margin_mm`` to a nodule are left out (ambiguous).
    Without ``candidate_scores`` the detector's order is kept.
    """
    if case.candidates_lps is None or len(case.candidates_lps) == 0 or n <= 0:
        return np.zeros((0, 3))
    idx = np.atleast_2d(case.volume.world_to_index(case.candidates_lps))
    order = np.arange(len(idx))
    if case.candidate_scores is not None and len(case.candidate_scores) == len(idx):
        order = np.argsort(-np.asarray(case.candidate_scores), kind="stable")
    idx = idx[order]
    return np.asarray(idx[_far_from_nodules(case, idx, margin_mm)][:n], dtype=np.float64)


def _sample_mask(mask: NDArray[np.bool_], k: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Up to ``k`` distinct random voxel indices ``(m, 3)`` inside ``mask``."""
    flat = np.flatnonzero(mask)
    if len(flat) == 0:
        return np.zeros((0, 3), dtype=np.intp)
    pick = flat[rng.choice(len(flat), min(k, len(flat)), replace=False)]
    return np.stack(np.unravel_index(pick, mask.shape), axis=1)


def negative_centers(
    case: TrainingCase, n: int, rng: np.random.Generator, margin_mm: float = 3.0
) -> NDArray[np.float64]:
    """Up to ``n`` negative patch centres ``(m, 3)`` (fractional z, y, x).

    Detector candidates that match no nodule come first; random lung points (half on
    dense voxels, a quarter on the pleural surface) fill up to ``n``.
    """
    picked: list[NDArray[np.float64]] = []
    if case.candidates_lps is not None and len(case.candidates_lps):
        idx = np.atleast_2d(case.volume.world_to_index(case.candidates_lps))
        idx = idx[_far_from_nodules(case, idx, margin_mm)]
        if len(idx) > n:
            idx = idx[rng.choice(len(idx), n, replace=False)]
        picked.append(idx)
    need = n - sum(len(p) for p in picked)
    if need > 0:
        from scipy import ndimage

        lung = _lung_mask(case)
        hu = np.asarray(case.volume.array)
        edge = lung & ~ndimage.binary_erosion(lung, iterations=1)
        # dense voxels (vessels, fissures), the pleural surface, then anywhere in the lung
        pools = [lung & (hu > DENSE_HU), edge, lung]
        shares = [need // 2, need // 4]
        got = 0
        for k, pool in enumerate(pools):
            want = shares[k] if k < len(shares) else need - got
            if want <= 0:
                continue
            sel = _sample_mask(pool, want * 3, rng).astype(np.float64)
            sel = sel[_far_from_nodules(case, sel, margin_mm)][:want]
            picked.append(sel)
            got += len(sel)
    if not picked:
        return np.zeros((0, 3))
    return np.concatenate(picked, axis=0)[:n]


def jittered(
    centers_zyx: NDArray[np.float64],
    diameters_mm: NDArray[np.float64],
    spacing_zyx: Sequence[float],
    copies: int,
    rng: np.random.Generator,
    fraction: float = 0.25,
    max_mm: float = 3.0,
) -> NDArray[np.float64]:
    """Each centre once exactly and ``copies - 1`` times shifted by up to
    ``min(fraction * diameter, max_mm)`` mm per axis."""
    out = []
    sp = np.asarray(spacing_zyx, dtype=np.float64)
    for c, d in zip(centers_zyx, diameters_mm, strict=True):
        out.append(c)
        amp = min(fraction * float(d), max_mm)
        for _ in range(max(0, copies - 1)):
            out.append(c + rng.uniform(-amp, amp, size=3) / sp)
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def classifier_patches(
    cases: Iterable[TrainingCase],
    spec: PatchSpec,
    negatives_per_case: int = 40,
    positive_copies: int = 4,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    hard_negatives: int | None = None,
    random_negatives: int = 0,
    candidate_positives: bool = False,
) -> tuple[NDArray[np.float16], NDArray[np.int64], NDArray[np.int64]]:
    """Cut labelled patches for the FP classifier.

    Args:
        cases: Training cases.
        spec: The classifier's patch contract.
        negatives_per_case: Negative patches per scan (used when ``hard_negatives`` is
            None: detector candidates first, random lung points fill up).
        positive_copies: Patches per nodule (1 exact + jittered copies).
        seed: Sampling seed.
        progress: Called with the number of cases done.
        hard_negatives: When set: the this-many highest-scoring detector false
            positives of each scan (see :func:`hard_negative_centers`) ...
        random_negatives: ... plus this many random lung points (vessels, pleura,
            parenchyma; see :func:`negative_centers`).
        candidate_positives: Also use the detector candidates that hit a nodule as
            positives (real detector offsets from the centre).

    Returns:
        ``(patches (N, *spec.size_zyx) float16 in [0, 1], labels (N,) 0/1,
        case_index (N,))``.
    """
    rng = np.random.default_rng(seed)
    xs: list[NDArray[np.float32]] = []
    ys: list[NDArray[np.int64]] = []
    cs: list[NDArray[np.int64]] = []
    for i, case in enumerate(cases):
        pos = jittered(
            case.centers_zyx, case.diameters_mm, case.volume.spacing_zyx, positive_copies, rng
        )
        if candidate_positives and case.candidates_lps is not None:
            hits = case.candidates_lps[candidate_hits(case)]
            if len(hits):
                pos = np.concatenate([pos, np.atleast_2d(case.volume.world_to_index(hits))])
        if hard_negatives is None:
            neg = negative_centers(case, negatives_per_case, rng)
        else:
            rand_case = dataclasses.replace(case, candidates_lps=None)
            parts = [hard_negative_centers(case, hard_negatives)]
            if random_negatives > 0:
                parts.append(negative_centers(rand_case, random_negatives, rng))
            neg = np.concatenate(parts, axis=0)
        centers = np.concatenate([pos, neg], axis=0)
        xs.append(extract_patches(case.volume.array, case.volume.spacing_zyx, centers, spec))
        ys.append(np.r_[np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
        cs.append(np.full(len(centers), i, dtype=np.int64))
        if progress is not None:
            progress(i + 1)
    if not xs:
        none = np.zeros(0, np.int64)
        return np.zeros((0, *spec.size_zyx), np.float16), none, none.copy()
    return (
        np.concatenate(xs).astype(np.float16),
        np.concatenate(ys),
        np.concatenate(cs),
    )


def segmentation_patches(
    cases: Iterable[TrainingCase],
    spec: PatchSpec,
    copies: int = 2,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[NDArray[np.float16], NDArray[np.uint8]]:
    """Cut image / mask patch pairs around every nodule that has a mask.

    The target mask holds only the nodule at the patch centre (other nodules are
    background).

    Returns:
        ``(images (N, *size) float16 in [0, 1], masks (N, *size) uint8)``.
    """
    rng = np.random.default_rng(seed)
    mask_spec = PatchSpec(spec.size_zyx, spec.spacing_zyx, hu_min=0.0, hu_max=1.0)
    xs: list[NDArray[np.float32]] = []
    ms: list[NDArray[np.uint8]] = []
    for i, case in enumerate(cases):
        if case.seg is None or len(case.boxes) == 0:
            continue
        sp = case.volume.spacing_zyx
        for c, d, lab in zip(case.centers_zyx, case.diameters_mm, case.seg_labels, strict=False):
            centers = jittered(c[None], np.asarray([d]), sp, copies, rng, fraction=0.15, max_mm=2.0)
            target = (case.seg == lab).astype(np.float32)
            if not target.any():
                continue
            xs.append(extract_patches(case.volume.array, sp, centers, spec))
            ms.append((extract_patches(target, sp, centers, mask_spec) > 0.5).astype(np.uint8))
        if progress is not None:
            progress(i + 1)
    if not xs:
        return np.zeros((0, *spec.size_zyx), np.float16), np.zeros((0, *spec.size_zyx), np.uint8)
    return np.concatenate(xs).astype(np.float16), np.concatenate(ms)


def add_detector_candidates(
    items: Sequence[dict[str, Any]],
    detect: Callable[[CTVolume], Sequence[Any]],
) -> list[dict[str, Any]]:
    """Run a candidate detector on each item's image; store positions as ``"candidates"``.

    Args:
        items: Datalist items.
        detect: ``volume -> candidates`` (objects with ``center_lps``), e.g. a wrapper of
            ``medsnowball.detection.detect_candidates``.

    Returns:
        New items with ``"candidates": [[x, y, z], ...]`` (world LPS mm).
    """
    from medsnowball.io import load_ct

    out = []
    for item in items:
        cands = detect(load_ct(item["image"]))
        out.append({**item, "candidates": [[float(v) for v in c.center_lps] for c in cands]})
    return out


__all__ = [
    "TrainingCase",
    "add_detector_candidates",
    "candidate_hits",
    "classifier_patches",
    "hard_negative_centers",
    "jittered",
    "load_training_case",
    "negative_centers",
    "segmentation_patches",
]
