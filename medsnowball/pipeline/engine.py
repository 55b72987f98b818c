"""The :class:`Pipeline`: an ordered list of steps run on one case at a time."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import CaseResult
from medsnowball.core.volume import CTVolume
from medsnowball.pipeline.config import build_config, config_to_dict
from medsnowball.pipeline.context import CaseContext, DeviceName, RunOptions, parse_formats
from medsnowball.pipeline.loader import (
    FORMAT_VERSION,
    check_dependencies,
    check_files,
    parse_definition,
    read_definition,
    resolve_definition,
)
from medsnowball.pipeline.registry import Step

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.io import CaseInput
    from medsnowball.pipeline.batch import BatchSummary, ProgressEvent

__all__ = ["DEFAULT_PIPELINE", "Pipeline", "case_id_for_volume"]

log = logging.getLogger(__name__)

DEFAULT_PIPELINE = "lung_nodule_screening"


def _safe_id(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return slug[:64] or "case"


def case_id_for_volume(volume: CTVolume) -> str:
    """A file-system safe id for a volume given directly (no patient identifiers).

    Uses the series UID's hash when there is one, else the source file's stem.
    """
    if volume.series_uid:
        return "series-" + hashlib.sha1(volume.series_uid.encode()).hexdigest()[:12]
    if volume.source:
        name = Path(volume.source).name
        for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        return _safe_id(name)
    return "case"


class Pipeline:
    """An ordered list of named steps with an operating threshold.

    Build one from YAML (:meth:`from_yaml`) or from step objects; run it on one case
    (:meth:`run`) or on many (:meth:`run_batch`). Pipelines pickle cleanly, so executors can
    ship them to worker processes.

    Example::

        from medsnowball.pipeline import Pipeline

        pipe = Pipeline.from_yaml("lung_nodule_screening")
        result = pipe.run("scans/patient01/")          # -> CaseResult
        for nodule in result.nodules:
            print(nodule.id, nodule.diameter_mm, nodule.lung_rads)
    """

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        name: str,
        threshold: float = 0.5,
        description: str = "",
        origin: str | None = None,
    ) -> None:
        """Create a pipeline from step instances.

        Args:
            steps: Steps in the order they run (labels must be unique).
            name: Pipeline name (written into findings.json).
            threshold: Candidates with ``score >= threshold`` become nodules.
            description: Free text.
            origin: Where the definition came from (file path), for messages.

        Raises:
            ConfigError: Empty step list, duplicate labels, a step whose inputs no earlier
                step provides, or a threshold outside [0, 1].
        """
        if not steps:
            raise ConfigError(f"pipeline {name!r}: needs at least one step.")
        labels = [s.label for s in steps]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"pipeline {name!r}: step names must be unique, repeated: {dupes}.")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"threshold: expected a number in [0, 1], found {threshold}.")
        check_dependencies(list(steps))
        # Pipelines built in code (or edited with with_step_config) are checked too.
        check_files(list(steps))
        self.steps: tuple[Step, ...] = tuple(steps)
        self.name = name
        self.threshold = float(threshold)
        self.description = description
        self.origin = origin

    # construction -------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path_or_name: str | os.PathLike[str] = DEFAULT_PIPELINE) -> Pipeline:
        """Load a pipeline from a YAML file or a shipped pipeline name.

        Args:
            path_or_name: ``"lung_nodule_screening"``, ``"lung_nodule_classical"`` or a path.

        Returns:
            The validated pipeline.

        Raises:
            ConfigError: Unknown name/missing file or an invalid definition (the message
                names the file and the bad key path).
        """
        path = resolve_definition(path_or_name)
        spec = parse_definition(read_definition(path), origin=str(path))
        return cls(
            spec.steps,
            name=spec.name,
            threshold=spec.threshold,
            description=spec.description,
            origin=str(path),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "<dict>") -> Pipeline:
        """Build a pipeline from a mapping with the YAML file's structure."""
        spec = parse_definition(data, origin=origin)
        return cls(
            spec.steps,
            name=spec.name,
            threshold=spec.threshold,
            description=spec.description,
            origin=origin,
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML structure of this pipeline (``from_dict(p.to_dict())`` round-trips)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["format_version"] = FORMAT_VERSION
        out["threshold"] = self.threshold
        out["steps"] = [s.to_dict() for s in self.steps]
        return out

    def to_yaml(self) -> str:
        """The pipeline as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_threshold(self, threshold: float) -> Pipeline:
        """A copy with another operating threshold."""
        return Pipeline(
            self.steps,
            name=self.name,
            threshold=threshold,
            description=self.description,
            origin=self.origin,
        )

    def with_step_config(self, label: str, **changes: Any) -> Pipeline:
        """A copy where step ``label`` has some options changed.

        Raises:
            ConfigError: No such step, or an invalid option.
        """
        steps = list(self.steps)
        idx = self.step_index(label)
        old = steps[idx]
        merged = {**config_to_dict(old.config), **changes}
        config = build_config(type(old.config), merged, f"{label}.config")
        steps[idx] = type(old)(config, label=old.label)
        return Pipeline(
            steps,
            name=self.name,
            threshold=self.threshold,
            description=self.description,
            origin=self.origin,
        )

    def step_index(self, label: str) -> int:
        """Index of the step with this label.

        Raises:
            ConfigError: No such step.
        """
        for i, step in enumerate(self.steps):
            if step.label == label:
                return i
        raise ConfigError(f"pipeline {self.name!r} has no step {label!r}; steps: {self.labels}.")

    @property
    def labels(self) -> list[str]:
        """Step labels in order."""
        return [s.label for s in self.steps]

    @property
    def writes_outputs(self) -> bool:
        """True when some step writes the case's files (needed by :meth:`run_batch`)."""
        return any(s.writes_outputs for s in self.steps)

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, threshold={self.threshold}, steps={self.labels})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pipeline):
            return NotImplemented
        return (
            self.name == other.name
            and self.threshold == other.threshold
            and self.steps == other.steps
        )

    __hash__ = None  # type: ignore[assignment]

    # running ------------------------------------------------------------------------
    def make_context(
        self,
        source: str | os.PathLike[str] | CaseInput | CTVolume,
        options: RunOptions | None = None,
        *,
        case_id: str | None = None,
    ) -> CaseContext:
        """Create the context of one case (no step runs yet).

        Args:
            source: A file or folder holding exactly one CT series, a discovered
                ``CaseInput``, or a ``CTVolume``.
            options: Run options.
            case_id: Override the case id.

        Returns:
            A fresh :class:`CaseContext`.

        Raises:
            NoSeriesFoundError: A path without a CT series.
            ConfigError: A path holding several series (use :meth:`run_batch`).
        """
        options = options or RunOptions()
        common: dict[str, Any] = {
            "options": options,
            "pipeline_name": self.name,
            "threshold": self.threshold,
        }
        if isinstance(source, CTVolume):
            return CaseContext(
                case_id=case_id or case_id_for_volume(source),
                source=source.source,
                volume=source,
                study_uid=source.study_uid,
                series_uid=source.series_uid,
                luna_uid=source.series_uid,
                **common,
            )
        if isinstance(source, (str, os.PathLike)):
            from medsnowball.io import find_cases

            found = find_cases([source]).cases
            if len(found) != 1:
                ids = ", ".join(c.case_id for c in found)
                raise ConfigError(
                    f"{os.fspath(source)} holds {len(found)} CT series ({ids}); Pipeline.run "
                    "takes one: pass one of medsnowball.io.find_cases(...).cases, or use "
                    "run_batch for all of them."
                )
            case = found[0]
        else:
            case = source
        return CaseContext(
            case_id=case_id or case.case_id,
            source=str(case.source),
            case_input=case,
            study_uid=case.study_uid,
            series_uid=case.series_uid,
            luna_uid=case.luna_uid,
            **common,
        )

    def execute(
        self, ctx: CaseContext, *, on_step: Callable[[str, float], None] | None = None
    ) -> CaseContext:
        """Run every step on ``ctx`` in order, recording seconds per step.

        Output-writing steps are skipped when ``ctx.options.out_dir`` is None. The label of
        the running step is kept in ``ctx.extra["failed_step"]`` if a step raises.

        Args:
            ctx: The case context (changed in place).
            on_step: Called with ``(label, seconds)`` after each step.

        Returns:
            ``ctx``.
        """
        for step in self.steps:
            if step.writes_outputs and ctx.options.out_dir is None:
                continue
            t0 = time.perf_counter()
            try:
                step.run(ctx)
            except BaseException:
                ctx.extra["failed_step"] = step.label
                raise
            seconds = time.perf_counter() - t0
            ctx.timings_s[step.label] = seconds
            log.debug("case %s: step %s took %.2f s", ctx.case_id, step.label, seconds)
            if on_step is not None:
                on_step(step.label, seconds)
        return ctx

    def run(
        self,
        source: str | os.PathLike[str] | CaseInput | CTVolume,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        formats: str | Sequence[str] | None = None,
        device: DeviceName = "auto",
        include_patient_info: bool = False,
        keep_arrays: bool = True,
        case_id: str | None = None,
    ) -> CaseResult:
        """Run the pipeline on one case.

        Args:
            source: A file or folder with one CT series, a ``CaseInput`` from
                :func:`medsnowball.io.find_cases`, or a ``CTVolume``.
            out_dir: Folder for this case's files; ``None`` writes nothing.
            formats: Output formats overriding the report step's (e.g. ``"json,csv"``).
            device: ``auto``, ``cpu`` or ``cuda`` for learned steps.
            include_patient_info: Patient fields in the HTML/PDF report.
            keep_arrays: Keep the lung / nodule label arrays in the result.
            case_id: Override the case id.

        Returns:
            The case result: status ``"ok"``, or ``"needs_review"`` when a quality flag of
            severity ``"review"`` was raised (``result.quality``; see
            :mod:`medsnowball.pipeline.quality`).

        Raises:
            MedsnowballError: Any step's error, unchanged (loading, CAD, writing).
        """
        options = RunOptions(
            out_dir=Path(out_dir) if out_dir is not None else None,
            formats=parse_formats(
                formats if formats is None or isinstance(formats, str) else tuple(formats)
            ),
            include_patient_info=include_patient_info,
            device=device,
        )
        ctx = self.execute(self.make_context(source, options, case_id=case_id))
        return ctx.to_result(keep_arrays=keep_arrays)

    def run_batch(
        self,
        inputs: Any,
        out_dir: str | os.PathLike[str],
        *,
        workers: int = 1,
        resume: bool = False,
        formats: str | Sequence[str] | None = None,
        device: DeviceName = "auto",
        include_patient_info: bool = False,
        progress: Callable[[ProgressEvent], None] | None = None,
        executor: Any = None,
    ) -> BatchSummary:
        """Run on many cases; see :func:`medsnowball.pipeline.batch.run_batch`."""
        from medsnowball.pipeline.batch import run_batch

        return run_batch(
            inputs,
            out_dir,
            pipeline=self,
            workers=workers,
            resume=resume,
            formats=formats,
            device=device,
            include_patient_info=include_patient_info,
            progress=progress,
            executor=executor,
        )
