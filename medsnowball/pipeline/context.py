"""What travels between pipeline steps: run options and the per-case context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import (
    Assessment,
    Candidate,
    CaseResult,
    LungSegmentation,
    Nodule,
    NoduleSegmentation,
)
from medsnowball.core.quality import QualityFlag, status_for
from medsnowball.core.volume import CTVolume
from medsnowball.pipeline.device import resolve_device
from medsnowball.pipeline.quality import case_flags

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.io import CaseInput

__all__ = ["ALL_FORMATS", "CaseContext", "DeviceName", "RunOptions", "parse_formats"]

DeviceName = Literal["auto", "cpu", "cuda"]

#: Output formats the report step understands (``json`` = findings.json, always written).
ALL_FORMATS: tuple[str, ...] = ("json", "csv", "nifti", "html", "pdf", "seg", "sr")


def parse_formats(formats: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """Normalise a format selection (``"json,csv"`` or a sequence) and check the names.

    Args:
        formats: Comma-separated string, sequence of names, or ``None`` (keep the
            pipeline's own selection).

    Returns:
        The names in :data:`ALL_FORMATS` order, ``json`` always included; or ``None``.

    Raises:
        ConfigError: An unknown format name.
    """
    if formats is None:
        return None
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - set(ALL_FORMATS))
    if unknown:
        raise ConfigError(
            f"formats: unknown format(s) {', '.join(unknown)}; "
            f"choose from {', '.join(ALL_FORMATS)}."
        )
    wanted.add("json")
    return tuple(f for f in ALL_FORMATS if f in wanted)


@dataclass(frozen=True)
class RunOptions:
    """Run-time options that choose *where* and *how* a pipeline runs, never *what* it finds.

    Attributes:
        out_dir: Case output folder; ``None`` runs without writing any file (the report
            step is skipped).
        formats: Output formats overriding the report step's own list (``None`` keeps it).
        include_patient_info: Put patient fields into the HTML/PDF report.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``; used by learned
            steps only.
        torch_threads: Intra-op thread count for torch in this process (``None`` = torch's
            default).
    """

    out_dir: Path | None = None
    formats: tuple[str, ...] | None = None
    include_patient_info: bool = False
    device: DeviceName = "auto"
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device: expected auto, cpu or cuda, found {self.device!r}.")
        object.__setattr__(self, "formats", parse_formats(self.formats))
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir))


@dataclass(eq=False)
class CaseContext:
    """Mutable state of one case while the steps run; turned into a CaseResult at the end.

    Attributes:
        case_id: File-system safe case id (no patient identifiers).
        source: Input path (or description).
        options: Run options (output folder, formats, device).
        pipeline_name: Name of the running pipeline.
        threshold: Operating threshold: candidates with ``score >= threshold`` become nodules.
        case_input: The discovered input, when the case came from discovery.
        input_path: A file or folder to load, when given as a path.
        study_uid: DICOM StudyInstanceUID.
        series_uid: SeriesInstanceUID, or the file stem of NIfTI/MetaImage inputs.
        luna_uid: Id written to the ``seriesuid`` column of luna16 CSVs.
        volume: The CT volume (set by the load step, maybe replaced by preprocess).
        lungs: Lung segmentation.
        candidates: Every scored candidate.
        segmentations: Nodule masks of the candidates at or above the threshold.
        nodules: Measured nodules (ids 1..n).
        nodule_labels: uint16 instance labels ``(z, y, x)`` (value = ``Nodule.id``).
        assessment: Guideline assessment.
        warnings: Notes for the reader.
        quality: Quality flags raised by the steps (the loader's and the lung
            segmentation's travel on ``volume.quality`` and ``lungs.quality``).
        timings_s: Seconds per step label.
        outputs: Files written, by format name.
        extra: JSON-serialisable additions from custom steps.
    """

    case_id: str
    source: str
    options: RunOptions = field(default_factory=RunOptions)
    pipeline_name: str = ""
    threshold: float = 0.5
    case_input: CaseInput | None = None
    input_path: Path | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    luna_uid: str | None = None
    volume: CTVolume | None = None
    lungs: LungSegmentation | None = None
    candidates: list[Candidate] = field(default_factory=list)
    segmentations: list[NoduleSegmentation] = field(default_factory=list)
    nodules: list[Nodule] = field(default_factory=list)
    nodule_labels: NDArray[np.uint16] | None = None
    assessment: Assessment | None = None
    warnings: list[str] = field(default_factory=list)
    quality: list[QualityFlag] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    _device: str | None = field(default=None, repr=False)

    @property
    def device(self) -> str:
        """The resolved torch device (``"cpu"`` or ``"cuda"``); imports torch on first use.

        Raises:
            ConfigError: ``cuda`` was requested but no CUDA device is available.
        """
        if self._device is None:
            self._device = resolve_device(self.options.device)
        return self._device

    def require_volume(self, step: str) -> CTVolume:
        """Return the volume, or raise a clear error naming the step that needed it."""
        if self.volume is None:
            raise ConfigError(f"step {step!r} needs a CT volume: put a 'load' step before it.")
        return self.volume

    def require_lungs(self, step: str) -> LungSegmentation:
        """Return the lung segmentation, or raise naming the step that needed it."""
        if self.lungs is None:
            raise ConfigError(f"step {step!r} needs lung masks: put a 'lungs' step before it.")
        return self.lungs

    def to_result(self, *, keep_arrays: bool = True) -> CaseResult:
        """Freeze the context into a :class:`CaseResult`.

        Args:
            keep_arrays: Keep the lung and nodule label arrays (set ``False`` to ship the
                result between processes cheaply).

        Returns:
            The case result with the merged quality flags of the loader, the lung
            segmentation and the steps, and status ``"needs_review"`` when one of them
            has severity ``"review"``, else ``"ok"``.
        """
        volume = self.volume
        lungs_ml: dict[str, float] = {}
        if self.lungs is not None:
            lungs_ml = {"left": float(self.lungs.left_ml), "right": float(self.lungs.right_ml)}
        warnings = list(volume.warnings) if volume is not None else []
        warnings += [w for w in self.warnings if w not in warnings]
        flags = case_flags(self)
        return CaseResult(
            case_id=self.case_id,
            source=self.source,
            status=status_for(flags),
            study_uid=self.study_uid,
            series_uid=self.series_uid,
            pipeline=self.pipeline_name,
            geometry=volume.geometry if volume is not None else None,
            lungs_ml=lungs_ml,
            nodules=tuple(self.nodules),
            candidates=tuple(self.candidates),
            assessment=self.assessment,
            warnings=tuple(warnings),
            quality=flags,
            timings_s=dict(self.timings_s),
            lung_labels=self.lungs.labels if (keep_arrays and self.lungs is not None) else None,
            nodule_labels=self.nodule_labels if keep_arrays else None,
            extra={"luna_uid": self.luna_uid, **self.extra} if self.luna_uid else dict(self.extra),
        )
