"""Pipelines: ordered, configurable steps from a CT scan to findings and reports.

Quick start::

    from medsnowball.pipeline import Pipeline, run_batch

    pipe = Pipeline.from_yaml("lung_nodule_screening")   # or a path to your own YAML
    result = pipe.run("scan_folder/")                      # one case -> CaseResult
    summary = run_batch(["archive/"], "out/", workers=2)   # many cases -> files in out/

Importing this package is cheap: the algorithms (and torch) are imported by the steps
when they run.
"""

from __future__ import annotations

from medsnowball.pipeline.batch import (
    BatchSummary,
    CaseTask,
    ProgressEvent,
    run_batch,
    run_case_task,
)
from medsnowball.pipeline.config import FieldError, build_config, require
from medsnowball.pipeline.context import ALL_FORMATS, CaseContext, RunOptions, parse_formats
from medsnowball.pipeline.dask_executor import DaskExecutor, make_executor
from medsnowball.pipeline.device import limit_threads, resolve_device
from medsnowball.pipeline.engine import DEFAULT_PIPELINE, Pipeline
from medsnowball.pipeline.executors import Executor, LocalExecutor
from medsnowball.pipeline.loader import shipped_pipelines
from medsnowball.pipeline.outputs import LUNA16_COLUMNS, SUMMARY_COLUMNS, CaseOutcome
from medsnowball.pipeline.registry import (
    EmptyConfig,
    Step,
    available_steps,
    get_step_class,
    register_step,
)

__all__ = [
    "ALL_FORMATS",
    "DEFAULT_PIPELINE",
    "LUNA16_COLUMNS",
    "SUMMARY_COLUMNS",
    "BatchSummary",
    "CaseContext",
    "CaseOutcome",
    "CaseTask",
    "DaskExecutor",
    "EmptyConfig",
    "Executor",
    "FieldError",
    "LocalExecutor",
    "Pipeline",
    "ProgressEvent",
    "RunOptions",
    "Step",
    "available_steps",
    "build_config",
    "get_step_class",
    "limit_threads",
    "make_executor",
    "parse_formats",
    "register_step",
    "require",
    "resolve_device",
    "run_batch",
    "run_case_task",
    "shipped_pipelines",
]
