"""The step base class and the registry that maps YAML step names to step classes.

A step is a small class with a frozen config dataclass::

    @dataclass(frozen=True)
    class MyConfig:
        sigma_mm: float = 1.0

    @register_step("my_filter")
    class MyFilterStep(Step):
        config_class = MyConfig
        requires = ("volume",)
        provides = ("volume",)

        def run(self, ctx: CaseContext) -> None:
            ...

Built-in steps are listed in :data:`BUILTIN_STEPS` as ``"module:Class"`` strings and imported
on first use, so adding a step (a learned FP-reduction classifier, a U-Net segmenter, a
RetinaNet detector) is one line there. Third-party packages can register steps through the
``medsnowball.steps`` entry-point group (``name = "package.module:StepClass"``).
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline.config import build_config, config_to_dict, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from medsnowball.pipeline.context import CaseContext

__all__ = [
    "BUILTIN_STEPS",
    "CONTEXT_FIELDS",
    "EmptyConfig",
    "Step",
    "available_steps",
    "get_step_class",
    "register_step",
]

log = logging.getLogger(__name__)

#: Context fields a step may declare in ``requires`` / ``provides``.
CONTEXT_FIELDS: tuple[str, ...] = (
    "volume",
    "lungs",
    "candidates",
    "segmentations",
    "nodules",
    "nodule_labels",
    "assessment",
    "outputs",
)

#: Built-in steps, imported lazily: YAML name -> "module:Class".
BUILTIN_STEPS: dict[str, str] = {
    "load": "medsnowball.pipeline.steps:LoadStep",
    "preprocess": "medsnowball.pipeline.steps:PreprocessStep",
    "lungs": "medsnowball.pipeline.steps:LungsStep",
    "detect": "medsnowball.pipeline.steps:DetectStep",
    "fp_reduce": "medsnowball.pipeline.steps_learned:FPReduceStep",
    "segment": "medsnowball.pipeline.steps:SegmentStep",
    "measure": "medsnowball.pipeline.steps:MeasureStep",
    "assess": "medsnowball.pipeline.steps:AssessStep",
    "report": "medsnowball.pipeline.steps:ReportStep",
}

ENTRY_POINT_GROUP = "medsnowball.steps"

_REGISTRY: dict[str, type[Step]] = {}


@dataclass(frozen=True)
class EmptyConfig:
    """Config of a step without options."""


class Step(ABC):
    """One named stage of a pipeline.

    Subclasses set :attr:`config_class` (a frozen dataclass), optionally
    :attr:`requires` / :attr:`provides` (names from :data:`CONTEXT_FIELDS`, checked when a
    pipeline is loaded) and implement :meth:`run`. Instances pickle cleanly: anything a step
    caches (e.g. a loaded model) must live in ``self._cache``, which is dropped on pickling.

    Attributes:
        type_name: Registry name (set by :func:`register_step`).
        config_class: Frozen dataclass holding the options.
        requires: Context fields that earlier steps must provide.
        provides: Context fields this step sets.
        writes_outputs: True for steps that write the case's files (run only with an
            output folder).
    """

    type_name: ClassVar[str] = ""
    config_class: ClassVar[type[Any]] = EmptyConfig
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    writes_outputs: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, label: str | None = None) -> None:
        """Create the step.

        Args:
            config: An instance of :attr:`config_class`, a mapping of its options, or
                ``None`` for the defaults.
            label: Name of this step in the pipeline (timings, errors); defaults to
                :attr:`type_name`.

        Raises:
            ConfigError: ``config`` is not valid for this step.
        """
        if config is None or isinstance(config, dict):
            config = build_config(self.config_class, config, f"{label or self.type_name}.config")
        elif not isinstance(config, self.config_class):
            raise ConfigError(
                f"{label or self.type_name}: expected a {self.config_class.__name__}, "
                f"found {type(config).__name__}."
            )
        self.config = config
        self.label = label or self.type_name or type(self).__name__
        self._cache: dict[str, Any] = {}

    @abstractmethod
    def run(self, ctx: CaseContext) -> None:
        """Run on one case, reading from and writing to ``ctx``.

        Args:
            ctx: The case context.
        """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label={self.label!r}, config={self.config!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Step):
            return NotImplemented
        return (
            type(self) is type(other) and self.label == other.label and self.config == other.config
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of this step: ``{"step": ..., "name": ..., "config": {...}}``."""
        out: dict[str, Any] = {"step": self.type_name}
        if self.label != self.type_name:
            out["name"] = self.label
        cfg = config_to_dict(self.config)
        if cfg:
            out["config"] = cfg
        return out


def register_step(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a :class:`Step` subclass available under ``name`` in YAML.

    Args:
        name: The value of ``step:`` in pipeline files.

    Returns:
        The decorator (it returns the class unchanged, with ``type_name`` set).

    Raises:
        ValueError: ``name`` is already taken by another class.
    """

    def decorator(cls: type[Step]) -> type[Step]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"step name {name!r} is already registered by {existing!r}.")
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _import_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _plugin_specs() -> dict[str, str]:
    try:
        return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break built-in steps
        log.warning("could not list %s entry points: %s", ENTRY_POINT_GROUP, exc)
        return {}


def available_steps() -> list[str]:
    """Names usable as ``step:`` in YAML: built-in, registered in Python, and plugins."""
    return sorted(set(BUILTIN_STEPS) | set(_REGISTRY) | set(_plugin_specs()))


def get_step_class(name: str, path: str = "step") -> type[Step]:
    """Return the step class registered as ``name`` (importing it on first use).

    Args:
        name: Registry name.
        path: Key path for the error message (e.g. ``"steps[2].step"``).

    Returns:
        The :class:`Step` subclass.

    Raises:
        ConfigError: No step of that name.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    spec = BUILTIN_STEPS.get(name) or _plugin_specs().get(name)
    if spec is None:
        hint = did_you_mean(name, available_steps()) or (
            f" (available: {', '.join(available_steps())})"
        )
        raise ConfigError(f"{path}: unknown step {name!r}{hint}")
    cls = _import_object(spec)
    if not (isinstance(cls, type) and issubclass(cls, Step)):
        raise ConfigError(f"{path}: {spec} is not a medsnowball Step class.")
    if name not in _REGISTRY:
        cls.type_name = name
        _REGISTRY[name] = cls
    return _REGISTRY[name]
