"""Pipeline steps backed by the learned models of :mod:`medsnowball.models`.

- ``fp_reduce`` (:class:`FPReduceStep`): after ``detect``, re-scores every candidate with the
  false-positive reduction CNN, combined with the detector's score (by default the logistic
  stacking fitted with the weights); the pipeline's ``threshold`` then applies to the final
  score, and ``luna16_candidates.csv`` carries it.
- :func:`unet_segmenter`: the U-Net behind ``segment`` with ``method: unet``.

torch and the weights are loaded inside :meth:`~FPReduceStep.run` (once per worker process,
see :func:`medsnowball.models.get_fp_reducer`), never when this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from medsnowball.pipeline.config import require
from medsnowball.pipeline.registry import Step, register_step

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.core.findings import Candidate, LungSegmentation, NoduleSegmentation
    from medsnowball.core.volume import CTVolume
    from medsnowball.pipeline.context import CaseContext

__all__ = ["FPReduceConfig", "FPReduceStep", "unet_segmenter"]

log = logging.getLogger(__name__)

CombineMode = Literal["stacked", "geometric", "mean", "replace"]


@dataclass(frozen=True)
class FPReduceConfig:
    """Options of :class:`FPReduceStep`.

    Attributes:
        checkpoint: Classifier weights (``.safetensors``); ``null``: the shipped
            ``fp_classifier.safetensors``.
        combine: Final score: ``stacked`` (logistic stacking of detector score and CNN
            probability stored with the weights), ``geometric`` (their geometric mean),
            ``mean``, or ``replace`` (the CNN probability alone).
        batch_size: Patches per forward pass.
        tta: Average the CNN over the 8 axis flips of each patch; ``null``: as the
            weights' score combiner was fitted (the shipped weights: on).
    """

    checkpoint: str | None = None
    combine: CombineMode = "stacked"
    batch_size: int = 128
    tta: bool | None = None

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", f"expected >= 1, found {self.batch_size}")
        require(
            self.checkpoint is None or bool(str(self.checkpoint).strip()),
            "checkpoint",
            "expected a weights file path or null (shipped weights), found an empty string",
        )


@register_step("fp_reduce")
class FPReduceStep(Step):
    """Learned false-positive reduction: re-score the detector's candidates.

    Each candidate keeps the detector's score in ``features["detector_score"]`` and the
    CNN's probability in ``features["fp_probability"]``; ``score`` becomes the combined
    value and candidates are re-sorted by it.
    """

    config_class = FPReduceConfig
    requires = ("volume", "candidates")
    provides = ("candidates",)

    def run(self, ctx: CaseContext) -> None:
        """Replace ``ctx.candidates`` by the re-scored candidates, highest score first."""
        from medsnowball.models.inference import get_fp_reducer

        cfg: FPReduceConfig = self.config
        if not ctx.candidates:
            return
        reducer = get_fp_reducer(cfg.checkpoint, device=ctx.device)
        reducer.batch_size = cfg.batch_size
        scored = reducer.score(ctx.require_volume(self.label), ctx.candidates, cfg.combine, cfg.tta)
        ctx.candidates = sorted(scored, key=lambda c: (-c.score, *c.center_lps))


def unet_segmenter(
    ctx: CaseContext,
    volume: CTVolume,
    lungs: LungSegmentation,
    checkpoint: str | None,
    max_diameter_mm: float,
) -> Callable[[Candidate], NoduleSegmentation]:
    """Per-candidate segmentation with the nodule U-Net, classical fallback.

    The U-Net sees a fixed field (25.6 mm for the shipped weights); when its mask is empty
    or touches the border of that field (a nodule larger than the field), the classical
    region-growing segmenter is used instead.

    Args:
        ctx: The case context (device).
        volume: The CT.
        lungs: Its lung segmentation (for the classical fallback).
        checkpoint: U-Net weights; ``None``: the shipped ones.
        max_diameter_mm: Search size of the classical fallback.

    Returns:
        ``candidate -> NoduleSegmentation``.
    """
    from medsnowball.models.inference import get_unet_segmenter
    from medsnowball.segmentation import segment_nodule

    model = get_unet_segmenter(checkpoint, device=ctx.device)

    def segment(cand: Candidate) -> NoduleSegmentation:
        seg = model.segment(volume, cand)
        if seg.mask.any() and not _touches_border(seg.mask, seg.offset_zyx, volume.shape):
            return seg
        log.debug("case %s: U-Net mask empty or clipped, classical fallback", ctx.case_id)
        return segment_nodule(volume, cand, lungs, max_diameter_mm=max_diameter_mm)

    return segment


def _touches_border(
    mask: np.ndarray, offset_zyx: tuple[int, int, int], shape_zyx: tuple[int, ...]
) -> bool:
    """True when the mask reaches a face of its patch that is not the volume's edge."""
    for axis in range(3):
        lo_face = np.take(mask, 0, axis=axis).any()
        hi_face = np.take(mask, -1, axis=axis).any()
        at_lo = offset_zyx[axis] == 0
        at_hi = offset_zyx[axis] + mask.shape[axis] >= shape_zyx[axis]
        if (lo_face and not at_lo) or (hi_face and not at_hi):
            return True
    return False
