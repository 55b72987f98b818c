"""The built-in steps of the lung-nodule pipeline.

``load -> preprocess -> lungs -> detect -> segment -> measure -> assess -> report``

Each step is a thin adapter between the :class:`~medsnowball.pipeline.context.CaseContext`
and one library function; the algorithms live in :mod:`medsnowball.io`,
:mod:`medsnowball.lung`, :mod:`medsnowball.detection`, :mod:`medsnowball.segmentation`,
:mod:`medsnowball.measure` and :mod:`medsnowball.report`, imported inside :meth:`run` so that
importing this module (and the CLI) stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from medsnowball.core.errors import MedsnowballError
from medsnowball.pipeline.config import require
from medsnowball.pipeline.context import ALL_FORMATS, parse_formats
from medsnowball.pipeline.outputs import CANDIDATES_CSV, write_candidates_csv
from medsnowball.pipeline.registry import EmptyConfig, Step, register_step

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from medsnowball.core.findings import Candidate, Nodule, NoduleSegmentation
    from medsnowball.pipeline.context import CaseContext

__all__ = [
    "AssessConfig",
    "AssessStep",
    "DetectConfig",
    "DetectStep",
    "LoadStep",
    "LungsConfig",
    "LungsStep",
    "MeasureConfig",
    "MeasureStep",
    "PreprocessConfig",
    "PreprocessStep",
    "ReportConfig",
    "ReportStep",
    "SegmentConfig",
    "SegmentStep",
]

log = logging.getLogger(__name__)


@register_step("load")
class LoadStep(Step):
    """Read the case's CT volume (DICOM series, NIfTI, MetaImage, NRRD).

    A no-op when the pipeline was handed a :class:`~medsnowball.core.volume.CTVolume`.
    """

    config_class = EmptyConfig
    provides = ("volume",)

    def run(self, ctx: CaseContext) -> None:
        """Set ``ctx.volume`` (and the study/series UIDs it carries)."""
        if ctx.volume is None:
            if ctx.case_input is None:
                raise MedsnowballError(
                    f"case {ctx.case_id}: nothing to load (no CaseInput and no volume given)."
                )
            from medsnowball.io import load_case

            ctx.volume = load_case(ctx.case_input)
        volume = ctx.volume
        ctx.study_uid = ctx.study_uid or volume.study_uid
        ctx.series_uid = ctx.series_uid or volume.series_uid
        ctx.luna_uid = ctx.luna_uid or ctx.series_uid or ctx.case_id


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of :class:`PreprocessStep`.

    Attributes:
        clip_hu: HU range ``[low, high]`` the image is clipped to.
        warn_slice_spacing_mm: Add a warning when slices are further apart than this
            (small nodules may be missed).
    """

    clip_hu: tuple[float, float] = (-1024.0, 3071.0)
    warn_slice_spacing_mm: float = 2.5

    def __post_init__(self) -> None:
        require(
            self.clip_hu[0] < self.clip_hu[1],
            "clip_hu",
            f"expected [low, high] with low < high, found {list(self.clip_hu)}",
        )
        require(
            self.warn_slice_spacing_mm > 0,
            "warn_slice_spacing_mm",
            f"expected a positive number of mm, found {self.warn_slice_spacing_mm}",
        )


@register_step("preprocess")
class PreprocessStep(Step):
    """Clip HU to a plausible range and flag thick-slice images. Keeps the input grid."""

    config_class = PreprocessConfig
    requires = ("volume",)
    provides = ("volume",)

    def run(self, ctx: CaseContext) -> None:
        """Replace ``ctx.volume`` by the clipped volume; add warnings."""
        cfg: PreprocessConfig = self.config
        volume = ctx.require_volume(self.label)
        low, high = cfg.clip_hu
        arr = volume.array
        if arr.size and (float(arr.min()) < low or float(arr.max()) > high):
            clipped = np.clip(arr, low, high).astype(arr.dtype, copy=False)
            ctx.volume = volume.with_array(clipped)
        dz = volume.spacing_zyx[0]
        if dz > cfg.warn_slice_spacing_mm:
            ctx.warnings.append(
                f"Slice spacing {dz:.2f} mm exceeds {cfg.warn_slice_spacing_mm:.2f} mm: "
                "small nodules may be missed and measurements are less precise."
            )


@dataclass(frozen=True)
class LungsConfig:
    """Options of :class:`LungsStep`.

    Attributes:
        backend: ``"classical"`` (no weights needed) or ``"lungmask"`` (needs the optional
            ``lungmask`` package and its weights).
    """

    backend: Literal["classical", "lungmask"] = "classical"


@register_step("lungs")
class LungsStep(Step):
    """Segment the lungs (left/right labels, volumes, zones); flag implausible volumes."""

    config_class = LungsConfig
    requires = ("volume",)
    provides = ("lungs",)

    def run(self, ctx: CaseContext) -> None:
        """Set ``ctx.lungs``; add ``lung_volume_implausible`` / side-ratio flags."""
        from medsnowball.lung import segment_lungs
        from medsnowball.pipeline.quality import lung_flags

        cfg: LungsConfig = self.config
        ctx.lungs = segment_lungs(ctx.require_volume(self.label), backend=cfg.backend)
        ctx.quality.extend(lung_flags(ctx.lungs))


@dataclass(frozen=True)
class DetectConfig:
    """Options of :class:`DetectStep`.

    Attributes:
        min_diameter_mm: Smallest nodule size searched for.
        max_diameter_mm: Largest nodule size searched for.
        max_candidates: Keep at most this many candidates (highest scores).
    """

    min_diameter_mm: float = 3.0
    max_diameter_mm: float = 30.0
    max_candidates: int = 100

    def __post_init__(self) -> None:
        require(
            self.min_diameter_mm > 0,
            "min_diameter_mm",
            f"expected a positive size in mm, found {self.min_diameter_mm}",
        )
        require(
            self.max_diameter_mm > self.min_diameter_mm,
            "max_diameter_mm",
            f"expected more than min_diameter_mm ({self.min_diameter_mm}), "
            f"found {self.max_diameter_mm}",
        )
        require(
            self.max_candidates >= 1,
            "max_candidates",
            f"expected at least 1, found {self.max_candidates}",
        )


@register_step("detect")
class DetectStep(Step):
    """Find and score nodule candidates inside the lungs (training-free CAD).

    Flags ``voxel_size_out_of_range`` and ``lungs_span_too_short`` when the image lies
    outside what the candidate scorer was validated on.
    """

    config_class = DetectConfig
    requires = ("volume", "lungs")
    provides = ("candidates",)

    def run(self, ctx: CaseContext) -> None:
        """Set ``ctx.candidates``, highest score first; add the voxel-size/span flags."""
        from medsnowball.detection import detect_candidates
        from medsnowball.pipeline.quality import lungs_span_flags, voxel_size_flags

        cfg: DetectConfig = self.config
        volume = ctx.require_volume(self.label)
        lungs = ctx.require_lungs(self.label)
        ctx.quality.extend(voxel_size_flags(volume))
        ctx.quality.extend(lungs_span_flags(lungs))
        found = detect_candidates(
            volume,
            lungs,
            min_diameter_mm=cfg.min_diameter_mm,
            max_diameter_mm=cfg.max_diameter_mm,
            max_candidates=cfg.max_candidates,
        )
        ctx.candidates = sorted(found, key=lambda c: (-c.score, *c.center_lps))


@dataclass(frozen=True)
class SegmentConfig:
    """Options of :class:`SegmentStep`.

    Attributes:
        max_nodules: Segment at most this many candidates (highest scores first) among
            those at or above the pipeline's threshold.
        max_overlap: Drop a mask when more than this fraction of its voxels already belongs
            to a higher-scoring nodule (duplicate detections of one nodule).
        max_diameter_mm: Largest nodule the segmenter grows (size of its search patch).
        method: ``classical`` (training-free region growing) or ``unet`` (the learned 3-D
            U-Net on a patch around each candidate, with the classical segmenter as
            fallback for nodules larger than its field; see
            :func:`medsnowball.pipeline.steps_learned.unet_segmenter`).
        checkpoint: U-Net weights for ``method: unet``; ``null``: the shipped ones.
    """

    max_nodules: int = 20
    max_overlap: float = 0.5
    max_diameter_mm: float = 40.0
    method: Literal["classical", "unet"] = "classical"
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        require(self.max_nodules >= 1, "max_nodules", f"expected >= 1, found {self.max_nodules}")
        require(
            self.max_diameter_mm > 0,
            "max_diameter_mm",
            f"expected a positive size in mm, found {self.max_diameter_mm}",
        )
        require(
            0.0 < self.max_overlap <= 1.0,
            "max_overlap",
            f"expected a fraction in (0, 1], found {self.max_overlap}",
        )


@register_step("segment")
class SegmentStep(Step):
    """Segment every candidate at or above the operating threshold."""

    config_class = SegmentConfig
    requires = ("volume", "lungs", "candidates")
    provides = ("segmentations",)

    def run(self, ctx: CaseContext) -> None:
        """Set ``ctx.segmentations`` (highest score first, duplicates removed)."""
        from medsnowball.pipeline.quality import nodule_cap_flag
        from medsnowball.segmentation import segment_nodule

        cfg: SegmentConfig = self.config
        volume = ctx.require_volume(self.label)
        lungs = ctx.require_lungs(self.label)

        def classical(cand: Candidate) -> NoduleSegmentation:
            return segment_nodule(volume, cand, lungs, max_diameter_mm=cfg.max_diameter_mm)

        segment_one: Callable[[Candidate], NoduleSegmentation] = classical
        if cfg.method == "unet":
            from medsnowball.pipeline.steps_learned import unet_segmenter

            segment_one = unet_segmenter(ctx, volume, lungs, cfg.checkpoint, cfg.max_diameter_mm)

        selected = [c for c in ctx.candidates if c.score >= ctx.threshold]
        selected.sort(key=lambda c: (-c.score, *c.center_lps))
        taken = np.zeros(volume.shape, dtype=bool)
        segs: list[NoduleSegmentation] = []
        for cand in selected:
            if len(segs) >= cfg.max_nodules:
                ctx.warnings.append(
                    f"More than {cfg.max_nodules} candidates above the threshold; "
                    "only the highest-scoring ones were segmented."
                )
                ctx.quality.append(nodule_cap_flag(len(selected), len(segs), cfg.max_nodules))
                break
            try:
                seg = segment_one(cand)
            except MedsnowballError as exc:
                ctx.warnings.append(
                    f"Candidate at {_fmt_mm(cand.center_lps)} could not be segmented: {exc}"
                )
                continue
            n_vox = int(seg.mask.sum())
            if n_vox == 0:
                continue
            overlap = int(taken[seg.slices][seg.mask].sum())
            if overlap > cfg.max_overlap * n_vox:
                log.debug("case %s: duplicate candidate dropped", ctx.case_id)
                continue
            taken[seg.slices] |= seg.mask
            segs.append(seg)
        ctx.segmentations = segs


def _fmt_mm(p: tuple[float, float, float]) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in p) + ") mm"


@dataclass(frozen=True)
class MeasureConfig:
    """Options of :class:`MeasureStep`.

    Attributes:
        min_diameter_mm: Drop nodules whose measured mean diameter is smaller. Default 3 mm:
            smaller opacities are micronodules in the Fleischner glossary and below the
            LUNA16 reference size; their candidates stay in luna16_candidates.csv.
    """

    min_diameter_mm: float = 3.0

    def __post_init__(self) -> None:
        require(
            self.min_diameter_mm >= 0,
            "min_diameter_mm",
            f"expected >= 0 mm, found {self.min_diameter_mm}",
        )


@register_step("measure")
class MeasureStep(Step):
    """Measure each segmented nodule; build the nodule instance-label image."""

    config_class = MeasureConfig
    requires = ("volume", "lungs", "segmentations")
    provides = ("nodules", "nodule_labels")

    def run(self, ctx: CaseContext) -> None:
        """Set ``ctx.nodules`` (ids 1..n, highest score first) and ``ctx.nodule_labels``."""
        from medsnowball.measure import measure_nodule

        cfg: MeasureConfig = self.config
        volume = ctx.require_volume(self.label)
        lungs = ctx.require_lungs(self.label)
        labels = np.zeros(volume.shape, dtype=np.uint16)
        nodules: list[Nodule] = []
        for seg in ctx.segmentations:
            nodule_id = len(nodules) + 1
            nodule = measure_nodule(
                volume, seg, lungs, nodule_id=nodule_id, score=float(seg.candidate.score)
            )
            if nodule.diameter_mm < cfg.min_diameter_mm:
                continue
            view = labels[seg.slices]
            view[seg.mask & (view == 0)] = nodule_id
            nodules.append(nodule)
        ctx.nodules = nodules
        ctx.nodule_labels = labels


@dataclass(frozen=True)
class AssessConfig:
    """Options of :class:`AssessStep`.

    Attributes:
        high_risk: Use the Fleischner high-risk recommendations.
    """

    high_risk: bool = False


@register_step("assess")
class AssessStep(Step):
    """Lung-RADS v2022 category per nodule and exam; Fleischner 2017 recommendation.

    When no lung was found or a quality flag says part of the lungs lies outside the image
    (see :func:`medsnowball.pipeline.quality.incomplete_evaluation_reason`), the exam is
    Lung-RADS 0 (incomplete), never a clean negative.
    """

    config_class = AssessConfig
    requires = ("nodules",)
    provides = ("assessment", "nodules")

    def run(self, ctx: CaseContext) -> None:
        """Set ``ctx.assessment`` and the nodules' ``lung_rads``."""
        from medsnowball.pipeline.quality import case_flags, incomplete_evaluation_reason
        from medsnowball.report.guidelines import assess

        cfg: AssessConfig = self.config
        assessment, nodules = assess(
            list(ctx.nodules),
            high_risk=cfg.high_risk,
            incomplete_reason=incomplete_evaluation_reason(case_flags(ctx), ctx.lungs),
        )
        ctx.assessment = assessment
        ctx.nodules = list(nodules)


@dataclass(frozen=True)
class ReportConfig:
    """Options of :class:`ReportStep`.

    Attributes:
        formats: Files to write: ``json`` (findings.json, always written), ``csv``
            (nodules.csv), ``nifti`` (lungs/nodules masks), ``html``, ``pdf``, ``seg``
            (DICOM SEG) and ``sr`` (DICOM SR; both DICOM inputs only). The CLI's
            ``--formats`` overrides this list.
    """

    formats: tuple[str, ...] = ALL_FORMATS

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in ALL_FORMATS]
        require(
            not unknown,
            "formats",
            f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(ALL_FORMATS)}",
        )


@register_step("report")
class ReportStep(Step):
    """Write the case's files into the output folder (skipped when there is none).

    Writes ``candidates.csv`` (every candidate, LUNA16 columns) first, then the report
    writers' outputs, ``findings.json`` last: a case folder with a readable findings.json
    is complete.
    """

    config_class = ReportConfig
    requires = ("volume",)
    provides = ("outputs",)
    writes_outputs = True

    def run(self, ctx: CaseContext) -> None:
        """Write the outputs; set ``ctx.outputs`` (format name -> path)."""
        from medsnowball.report import write_case_outputs

        cfg: ReportConfig = self.config
        out_dir = ctx.options.out_dir
        if out_dir is None:  # the engine skips us; guard for direct calls
            return
        formats = ctx.options.formats or parse_formats(cfg.formats) or ("json",)
        volume = ctx.require_volume(self.label)
        result = ctx.to_result(keep_arrays=True)
        outputs = {
            "candidates": write_candidates_csv(
                out_dir / CANDIDATES_CSV, ctx.luna_uid or ctx.case_id, ctx.candidates
            )
        }
        written = write_case_outputs(
            result,
            volume,
            out_dir,
            formats=formats,
            include_patient_info=ctx.options.include_patient_info,
        )
        outputs.update(written)
        ctx.outputs.update(outputs)
        for fmt, reason in (getattr(written, "skipped", None) or {}).items():
            log.debug("case %s: %s not written: %s", ctx.case_id, fmt, reason)
