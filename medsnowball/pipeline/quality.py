"""Quality flags the pipeline itself raises, and how a case's flags are gathered.

The loader (``CTVolume.quality``) and the lung segmentation (``LungSegmentation.quality``)
raise their own flags; the steps add the ones below to ``CaseContext.quality``, and
:meth:`CaseContext.to_result <medsnowball.pipeline.context.CaseContext.to_result>`
merges all three groups and derives the case status with
:func:`medsnowball.core.quality.status_for`.

=================================  ========  ==============================================
code                               severity  raised when (thresholds: the constants below)
=================================  ========  ==============================================
``voxel_size_out_of_range``        review    slice spacing outside
                                             ``FITTED_SLICE_SPACING_MM`` or pixel spacing
                                             outside ``FITTED_PIXEL_SPACING_MM`` (both in
                                             :mod:`medsnowball.detection.detect`): the
                                             range the candidate scorer was validated on
``lungs_span_too_short``           review    the lungs span less than
                                             ``MIN_LUNG_HEIGHT_MM`` (40 mm, same module)
                                             cranio-caudally
``lung_volume_implausible``        review    no lung found, or a lung smaller than
                                             :data:`MIN_LUNG_ML` (300 ml) or larger than
                                             :data:`MAX_LUNG_ML` (5000 ml)
``lung_side_ratio_implausible``    review    left/right volume ratio outside
                                             :data:`LUNG_SIDE_RATIO_RANGE` (0.4-2.5); not
                                             repeated when the lung segmentation raised it
``nodule_cap_reached``             review    more candidates at or above the operating
                                             threshold than ``segment.max_nodules``
``hu_range_implausible``           review    the analysed image cannot be a CT in HU: no
                                             voxel below :data:`AIR_BELOW_HU` (-900, no
                                             air anywhere), or more than
                                             :data:`MAX_SATURATED_FRACTION` (1 %) of the
                                             voxels at or above :data:`SATURATED_HU`
                                             (3000), or a standard deviation below
                                             :data:`MIN_HU_STD` (10 HU: an almost constant
                                             image); only for pipelines that segment the
                                             lungs (the CAD pipelines)
=================================  ========  ==============================================

A case whose lungs were not found, or with a review flag in
:data:`INCOMPLETE_EVALUATION_CODES` (lungs cut by the scan range or the field of view, an
impossible HU range: a corrupt or mis-scaled input), is
assessed Lung-RADS 0 (incomplete: part or all of the lungs cannot be evaluated), never as a
clean negative. An implausible lung volume alone leaves the category alone: the case needs
review, and the flag says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from medsnowball.core.quality import SEVERITY_REVIEW, QualityFlag, merge_flags

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.core.findings import LungSegmentation
    from medsnowball.core.volume import CTVolume
    from medsnowball.pipeline.context import CaseContext

__all__ = [
    "AIR_BELOW_HU",
    "CODE_HU_RANGE",
    "CODE_LUNGS_SPAN",
    "CODE_LUNG_SIDE_RATIO",
    "CODE_LUNG_VOLUME",
    "CODE_NODULE_CAP",
    "CODE_VOXEL_SIZE",
    "EXIT_NEEDS_REVIEW",
    "INCOMPLETE_EVALUATION_CODES",
    "LUNG_SIDE_RATIO_RANGE",
    "MAX_LUNG_ML",
    "MAX_SATURATED_FRACTION",
    "MIN_HU_STD",
    "MIN_LUNG_ML",
    "NO_LUNGS_MESSAGE",
    "SATURATED_HU",
    "case_flags",
    "hu_range_flags",
    "incomplete_evaluation_reason",
    "lung_flags",
    "lungs_span_flags",
    "nodule_cap_flag",
    "voxel_size_flags",
]

CODE_VOXEL_SIZE = "voxel_size_out_of_range"
CODE_LUNGS_SPAN = "lungs_span_too_short"
CODE_LUNG_VOLUME = "lung_volume_implausible"
CODE_LUNG_SIDE_RATIO = "lung_side_ratio_implausible"
CODE_NODULE_CAP = "nodule_cap_reached"
CODE_HU_RANGE = "hu_range_implausible"

#: Smallest plausible volume of one lung (ml) when the whole chest is in view.
MIN_LUNG_ML = 300.0
#: Largest plausible volume of one lung (ml); more means the segmentation leaked.
MAX_LUNG_ML = 5000.0
#: Plausible range of the left/right lung volume ratio.
LUNG_SIDE_RATIO_RANGE = (0.4, 2.5)

#: Flags of the lung segmentation (severity "review") that mean part of the lungs lies
#: outside the image: the exam is Lung-RADS 0 (incomplete), not a negative.
INCOMPLETE_EVALUATION_CODES: frozenset[str] = frozenset(
    {"lungs_cut_at_scan_range", "lungs_touch_fov_edge", CODE_HU_RANGE}
)
#: A chest CT always holds air (outside the body, in the lungs) below this HU.
AIR_BELOW_HU = -900.0
#: HU at or above which a voxel counts as saturated (the top of the usual 12-bit scale).
SATURATED_HU = 3000.0
#: Largest plausible fraction of saturated voxels (metal implants stay far below it).
MAX_SATURATED_FRACTION = 0.01
#: Smallest plausible standard deviation of a CT's HU values (real chest CT: ~400-500).
MIN_HU_STD = 10.0
#: Voxels used to estimate the standard deviation (a regular subsample of larger images).
_STD_SAMPLE = 1_000_000
#: Exit status of a batch (``medsnowball run``) where no case failed but some need review
#: (0: all ok, 1: some failed, whatever the others).
EXIT_NEEDS_REVIEW = 3
#: Message of the ``lung_volume_implausible`` flag of a case without lungs.
NO_LUNGS_MESSAGE = (
    "No lungs were found in the image: nodules could not be searched for, so the absence "
    "of nodules is not a negative result."
)


def voxel_size_flags(volume: CTVolume) -> list[QualityFlag]:
    """``voxel_size_out_of_range`` when the voxels lie outside the scorer's fitted range.

    Args:
        volume: The analysed CT.

    Returns:
        Zero or one flag.
    """
    from medsnowball.detection.detect import (
        FITTED_PIXEL_SPACING_MM,
        FITTED_SLICE_SPACING_MM,
        voxel_size_in_fitted_range,
    )

    if voxel_size_in_fitted_range(volume.spacing_zyx):
        return []
    dz, dy, dx = (float(v) for v in volume.spacing_zyx)
    lo, hi = FITTED_SLICE_SPACING_MM
    plo, phi = FITTED_PIXEL_SPACING_MM
    return [
        QualityFlag(
            CODE_VOXEL_SIZE,
            f"Voxel size {dz:.2f} x {dy:.2f} x {dx:.2f} mm (z, y, x) lies outside the range "
            f"the candidate scorer was validated on (slices {lo:g}-{hi:g} mm, pixels "
            f"{plo:g}-{phi:g} mm): candidate scores and the nodule list are less reliable.",
            SEVERITY_REVIEW,
        )
    ]


def _lung_height_mm(lungs: LungSegmentation) -> float:
    """Cranio-caudal extent of the lung mask (slices from first to last with lung) in mm."""
    slices = np.nonzero(lungs.mask.any(axis=(1, 2)))[0]
    if slices.size == 0:
        return 0.0
    return float(slices[-1] - slices[0] + 1) * float(lungs.geometry.spacing_zyx[0])


def lungs_span_flags(lungs: LungSegmentation) -> list[QualityFlag]:
    """``lungs_span_too_short`` when the lungs found span less than the detector needs.

    Args:
        lungs: The lung segmentation (no flag when it is empty: see :func:`lung_flags`).

    Returns:
        Zero or one flag.
    """
    from medsnowball.detection.detect import MIN_LUNG_HEIGHT_MM

    height = _lung_height_mm(lungs)
    if height == 0.0 or height >= MIN_LUNG_HEIGHT_MM:
        return []
    return [
        QualityFlag(
            CODE_LUNGS_SPAN,
            f"The lungs span only {height:.0f} mm cranio-caudally (less than "
            f"{MIN_LUNG_HEIGHT_MM:g} mm): vessels cut by so thin a volume look like nodules, "
            "so candidate scores are unreliable.",
            SEVERITY_REVIEW,
        )
    ]


def _no_lungs(lungs: LungSegmentation) -> bool:
    return not (float(lungs.right_ml) > 0 or float(lungs.left_ml) > 0)


def lung_flags(lungs: LungSegmentation) -> list[QualityFlag]:
    """Plausibility of the lung segmentation: volumes per side and their ratio.

    Args:
        lungs: The lung segmentation; flags it already carries are not repeated.

    Returns:
        ``lung_volume_implausible`` and/or ``lung_side_ratio_implausible`` flags.
    """
    flags: list[QualityFlag] = []
    volumes = {"right": float(lungs.right_ml), "left": float(lungs.left_ml)}
    if _no_lungs(lungs):
        flags.append(QualityFlag(CODE_LUNG_VOLUME, NO_LUNGS_MESSAGE, SEVERITY_REVIEW))
        return flags
    problems = [
        f"{side} lung {ml:.0f} ml is below {MIN_LUNG_ML:.0f} ml"
        if ml < MIN_LUNG_ML
        else f"{side} lung {ml:.0f} ml is above {MAX_LUNG_ML:.0f} ml"
        for side, ml in volumes.items()
        if not MIN_LUNG_ML <= ml <= MAX_LUNG_ML
    ]
    if problems:
        flags.append(
            QualityFlag(
                CODE_LUNG_VOLUME,
                "Implausible lung volume ("
                + "; ".join(problems)
                + "): the lungs are only partly in the image or the lung segmentation "
                "failed, so parts of the lungs may not have been searched for nodules.",
                SEVERITY_REVIEW,
            )
        )
    already = any(f.code == CODE_LUNG_SIDE_RATIO for f in lungs.quality)
    if not already and volumes["right"] > 0 and volumes["left"] > 0:
        ratio = volumes["left"] / volumes["right"]
        lo, hi = LUNG_SIDE_RATIO_RANGE
        if not lo <= ratio <= hi:
            flags.append(
                QualityFlag(
                    CODE_LUNG_SIDE_RATIO,
                    f"Left/right lung volume ratio {ratio:.2f} lies outside {lo:g}-{hi:g}: "
                    "the left/right split or one lung's segmentation is probably wrong, so "
                    "nodule locations (side, zone) may be wrong or nodules missed.",
                    SEVERITY_REVIEW,
                )
            )
    return flags


def nodule_cap_flag(n_above: int, n_reported: int, cap: int) -> QualityFlag:
    """``nodule_cap_reached``: more candidates above the threshold than the cap allows.

    Args:
        n_above: Candidates at or above the operating threshold.
        n_reported: Nodules segmented (and so reported) before the cap stopped the step.
        cap: ``segment.max_nodules``.

    Returns:
        The flag.
    """
    return QualityFlag(
        CODE_NODULE_CAP,
        f"{n_above} candidates scored at or above the operating threshold, more than the "
        f"cap of {cap} nodules: only the {n_reported} highest-scoring were segmented and "
        "reported, so nodules may be missing from the report (or the image is unusual "
        "enough to produce many false positives).",
        SEVERITY_REVIEW,
    )


def hu_range_flags(volume: CTVolume) -> list[QualityFlag]:
    """``hu_range_implausible`` when the HU distribution is impossible for a CT.

    Catches corrupt or mis-scaled inputs that would otherwise read as a clean negative: an
    all-zero or int8 image (no air), an absurd RescaleSlope (most voxels saturated, even
    after preprocessing clipped them), an almost constant image.

    Args:
        volume: The analysed CT (after preprocessing; clipping leaves every test valid).

    Returns:
        Zero or one flag; its message names each failed test with its summary number.
    """
    arr = np.asarray(volume.array)
    if arr.size == 0:
        return []
    problems: list[str] = []
    low = float(np.min(arr))
    if not np.isfinite(low) or not np.isfinite(float(np.max(arr))):
        problems.append("it holds non-finite values")
    elif low >= AIR_BELOW_HU:
        problems.append(f"no voxel is below {AIR_BELOW_HU:g} HU (no air; minimum {low:.0f})")
    saturated = float(np.count_nonzero(arr >= SATURATED_HU)) / arr.size
    if saturated > MAX_SATURATED_FRACTION:
        problems.append(f"{saturated:.0%} of the voxels are at or above {SATURATED_HU:g} HU")
    flat = arr.reshape(-1)
    sample = flat[:: max(1, flat.size // _STD_SAMPLE)].astype(np.float64)
    std = float(np.std(sample))
    if np.isfinite(std) and std < MIN_HU_STD:
        problems.append(f"the image is almost constant (standard deviation {std:.1f} HU)")
    if not problems:
        return []
    return [
        QualityFlag(
            CODE_HU_RANGE,
            "The image values are impossible for a CT in Hounsfield units ("
            + "; ".join(problems)
            + "): the file is probably corrupt or wrongly scaled (rescale slope/intercept, "
            "data type), so no finding, and no absence of findings, can be trusted.",
            SEVERITY_REVIEW,
        )
    ]


def case_flags(ctx: CaseContext) -> tuple[QualityFlag, ...]:
    """All flags of a case so far: the loader's, the lung segmentation's, the steps'.

    When the pipeline segmented the lungs (``ctx.lungs`` is set), the HU plausibility
    check of :func:`hu_range_flags` runs on the analysed volume and its flag follows the
    loader's. Pipelines without a lungs step (generic or test pipelines) are not checked.

    Args:
        ctx: The case context.

    Returns:
        The merged flags (exact repeats removed, pipeline order kept).
    """
    groups: list[Iterable[QualityFlag]] = []
    if ctx.volume is not None:
        groups.append(ctx.volume.quality)
        if ctx.lungs is not None:
            groups.append(hu_range_flags(ctx.volume))
    if ctx.lungs is not None:
        groups.append(ctx.lungs.quality)
    groups.append(ctx.quality)
    return merge_flags(*groups)


def incomplete_evaluation_reason(
    flags: Iterable[QualityFlag], lungs: LungSegmentation | None = None
) -> str | None:
    """Why part or all of the lungs could not be evaluated, or ``None``.

    Args:
        flags: The case's flags.
        lungs: The lung segmentation, when the pipeline made one.

    Returns:
        :data:`NO_LUNGS_MESSAGE` when the segmentation found no lung, and the messages of
        the review flags in :data:`INCOMPLETE_EVALUATION_CODES`, joined by a space;
        ``None`` when there is none.
    """
    reasons = [NO_LUNGS_MESSAGE] if lungs is not None and _no_lungs(lungs) else []
    reasons += [
        f.message
        for f in flags
        if f.severity == SEVERITY_REVIEW and f.code in INCOMPLETE_EVALUATION_CODES
    ]
    return " ".join(reasons) if reasons else None
