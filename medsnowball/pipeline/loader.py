"""Find, read and validate pipeline definitions (YAML).

The shipped pipelines live in the package (``medsnowball/pipeline/definitions/*.yaml``),
which is the single source of truth: it works for editable and regular installs alike.
The repository's ``pipelines/`` folder holds identical copies for users to read and edit
(a test keeps them in sync).

File format (see ``docs/pipeline.md``)::

    name: lung_nodule_screening        # required
    description: ...                   # optional
    format_version: 1                  # optional, the only version so far
    threshold: 0.5                     # operating threshold on candidate scores
    steps:                             # required, run in order
      - step: detect                   # registered step name
        name: detect                   # optional unique label (timings, errors)
        config: {max_candidates: 100}  # optional step options
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline.config import build_config, check_keys
from medsnowball.pipeline.registry import Step, get_step_class

__all__ = [
    "DEFINITIONS_DIR",
    "FILE_FIELDS",
    "FORMAT_VERSION",
    "PipelineSpec",
    "check_files",
    "parse_definition",
    "read_definition",
    "resolve_definition",
    "shipped_pipelines",
]

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"
FORMAT_VERSION = 1
TOP_LEVEL_KEYS = ("name", "description", "format_version", "threshold", "steps")
STEP_KEYS = ("step", "name", "config")
#: Step config fields that name a file (weights) which must exist when the pipeline loads;
#: a config dataclass field can also opt in with ``field(metadata={"file": True})``.
FILE_FIELDS = ("checkpoint",)
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise ConfigError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                f"(first at line {seen[key] + 1}); each key may appear once."
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def shipped_pipelines() -> dict[str, Path]:
    """Names and paths of the pipelines shipped with medsnowball."""
    return {p.stem: p for p in sorted(DEFINITIONS_DIR.glob("*.yaml"))}


def resolve_definition(path_or_name: str | os.PathLike[str]) -> Path:
    """Map a shipped pipeline name (``lung_nodule_screening``) or a file path to a file.

    Args:
        path_or_name: A name from :func:`shipped_pipelines` (with or without ``.yaml``) or
            the path of a YAML file.

    Returns:
        The file to read.

    Raises:
        ConfigError: Neither a shipped name nor an existing file.
    """
    text = os.fspath(path_or_name)
    shipped = shipped_pipelines()
    stem = text[:-5] if text.endswith(".yaml") else text
    if stem in shipped and not Path(text).exists():
        return shipped[stem]
    path = Path(text).expanduser()
    if path.is_file():
        return path
    names = ", ".join(shipped) or "(none)"
    raise ConfigError(
        f"pipeline {text!r}: no such file and not a shipped pipeline name; "
        f"shipped pipelines: {names}."
    )


def read_definition(path: Path) -> dict[str, Any]:
    """Parse a pipeline YAML file into a mapping (no validation beyond YAML syntax).

    Raises:
        ConfigError: Unreadable file, YAML syntax error, duplicate key, or not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"pipeline file {path}: cannot be read ({exc}).") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with 'name' and 'steps', found {type(data).__name__}."
        )
    return data


class PipelineSpec:
    """A validated pipeline definition: name, description, threshold and step instances."""

    def __init__(self, name: str, description: str, threshold: float, steps: list[Step]):
        self.name = name
        self.description = description
        self.threshold = threshold
        self.steps = steps


def _check_threshold(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: expected a number in [0, 1], found {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{path}: expected a number in [0, 1], found {value}.")
    return float(value)


def check_dependencies(steps: list[Step], path: str = "steps") -> None:
    """Check that every step's ``requires`` is provided by an earlier step.

    Raises:
        ConfigError: Names the step index, its label and the missing input.
    """
    available: set[str] = set()
    for i, step in enumerate(steps):
        missing = [r for r in step.requires if r not in available]
        if missing:
            raise ConfigError(
                f"{path}[{i}] ({step.label}): needs {', '.join(missing)}, which no earlier "
                "step provides; reorder the steps or add the missing one (e.g. 'load' "
                "before anything that reads the volume)."
            )
        available.update(step.provides)


def check_files(steps: list[Step], path: str = "steps") -> None:
    """Check that every file a step's config names (e.g. ``checkpoint``) exists now.

    Relative paths are checked against the working directory, as the steps open them.
    ``null`` (the shipped weights) is not checked here.

    Raises:
        ConfigError: Names the key path (``steps[4].config.checkpoint``), the step, the
            path as written and what to do; raised before any case runs.
    """
    for i, step in enumerate(steps):
        config = step.config
        if not dataclasses.is_dataclass(config) or isinstance(config, type):
            continue
        for field in dataclasses.fields(config):
            if field.name not in FILE_FIELDS and not field.metadata.get("file"):
                continue
            value = getattr(config, field.name)
            if value is None:
                continue
            file = Path(os.fspath(value))
            if file.is_file() and os.access(file, os.R_OK):
                continue
            found = (
                "a folder"
                if file.is_dir()
                else "a file that cannot be read"
                if file.exists()
                else "no such file"
            )
            where = (
                "" if file.is_absolute() else f" (relative to the working directory {Path.cwd()})"
            )
            raise ConfigError(
                f"{path}[{i}].config.{field.name} ({step.label}): expected an existing, "
                f"readable file, found {found}: {os.fspath(value)!r}{where}. Fix the path "
                "(an absolute path is safest), or set it to null for the shipped weights."
            )


def parse_definition(data: Mapping[str, Any], origin: str = "<pipeline>") -> PipelineSpec:
    """Validate a parsed pipeline mapping and build its steps.

    Args:
        data: The parsed YAML document.
        origin: File name or description, prefixed to error messages.

    Returns:
        The validated specification.

    Raises:
        ConfigError: The first problem found, naming its key path (e.g.
            ``steps[3].config.max_candidatez: unknown key; did you mean max_candidates?``).
    """
    try:
        return _parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc


def _parse(data: Mapping[str, Any]) -> PipelineSpec:
    check_keys(data, TOP_LEVEL_KEYS, "")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name: required, expected a non-empty string, found {name!r}.")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"description: expected a string, found {description!r}.")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ConfigError(
            f"format_version: this medsnowball reads version {FORMAT_VERSION}, found {version!r}."
        )
    threshold = _check_threshold(data.get("threshold", 0.5), "threshold")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"steps: required, expected a non-empty list, found {raw_steps!r}.")
    steps: list[Step] = []
    labels: dict[str, int] = {}
    for i, raw in enumerate(raw_steps):
        path = f"steps[{i}]"
        if isinstance(raw, str):
            raw = {"step": raw}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected a mapping with 'step', found {raw!r}.")
        check_keys(raw, STEP_KEYS, path)
        type_name = raw.get("step")
        if not isinstance(type_name, str):
            raise ConfigError(f"{path}.step: required, expected a step name, found {type_name!r}.")
        cls = get_step_class(type_name, f"{path}.step")
        label = raw.get("name", type_name)
        if not isinstance(label, str) or not _LABEL_RE.match(label):
            raise ConfigError(
                f"{path}.name: expected letters, digits, '_' or '-' (starting with a letter), "
                f"found {label!r}."
            )
        if label in labels:
            raise ConfigError(
                f"{path}.name: {label!r} is already used by steps[{labels[label]}]; "
                "give each step a unique 'name'."
            )
        labels[label] = i
        config = build_config(cls.config_class, raw.get("config"), f"{path}.config")
        steps.append(cls(config, label=label))
    check_dependencies(steps)
    check_files(steps)
    return PipelineSpec(name.strip(), description, threshold, steps)
