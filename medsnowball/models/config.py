"""Typed, JSON-serialisable configurations of the learned models.

A configuration fully describes how to rebuild a network and how to feed it: the
architecture arguments *and* the input contract (patch size, voxel spacing, HU window).
It travels inside every checkpoint (see :mod:`medsnowball.models.checkpoint`), so a
checkpoint is self-describing and never needs pickled Python objects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from medsnowball.core.errors import ConfigError

ModelKind = Literal["fp_classifier", "nodule_unet", "retinanet"]

#: Format version of the JSON config stored in checkpoints.
CONFIG_VERSION = 1


@dataclass(frozen=True)
class PatchSpec:
    """How a patch is cut from a CT and normalised before it enters a network.

    Attributes:
        size_zyx: Patch shape in voxels ``(z, y, x)``.
        spacing_zyx: Voxel size of the patch in mm ``(z, y, x)``; the CT is resampled
            (trilinear) to it around each candidate.
        hu_min: HU mapped to 0 (values below are clipped).
        hu_max: HU mapped to 1 (values above are clipped).
    """

    size_zyx: tuple[int, int, int] = (32, 32, 32)
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hu_min: float = -1024.0
    hu_max: float = 400.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_zyx", tuple(int(s) for s in self.size_zyx))
        object.__setattr__(self, "spacing_zyx", tuple(float(s) for s in self.spacing_zyx))
        if len(self.size_zyx) != 3 or min(self.size_zyx) < 4:
            raise ConfigError(f"patch.size_zyx must be 3 sizes >= 4, got {self.size_zyx}.")
        if len(self.spacing_zyx) != 3 or min(self.spacing_zyx) <= 0:
            raise ConfigError(f"patch.spacing_zyx must be 3 positive mm, got {self.spacing_zyx}.")
        if self.hu_max <= self.hu_min:
            raise ConfigError(
                f"patch.hu_max ({self.hu_max}) must be greater than patch.hu_min ({self.hu_min})."
            )

    @property
    def extent_mm_zyx(self) -> tuple[float, float, float]:
        """Field of view of the patch in mm ``(z, y, x)``."""
        return tuple(n * s for n, s in zip(self.size_zyx, self.spacing_zyx, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild and feed one learned model.

    Attributes:
        kind: ``"fp_classifier"``, ``"nodule_unet"`` or ``"retinanet"``.
        patch: Input contract (patch size, spacing, HU window).
        channels: Feature channels per resolution level.
        strides: Down-sampling stride per level (classifier: one per channel entry;
            U-Net: one fewer than ``channels``).
        num_res_units: Residual units per block (MONAI ``Classifier`` / ``UNet``).
        dropout: Dropout probability.
        norm: MONAI normalisation name (``"batch"``, ``"instance"``).
        threshold: Operating threshold on the output probability (segmenter: mask
            threshold; classifier: suggested candidate threshold).
        extra: Free-form architecture arguments of other kinds (e.g. RetinaNet anchors).
        training: Metadata about how the weights were obtained (data, epochs, metrics).
        version: Config format version.
    """

    kind: ModelKind
    patch: PatchSpec = field(default_factory=PatchSpec)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1
    dropout: float = 0.1
    norm: str = "batch"
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.kind not in ("fp_classifier", "nodule_unet", "retinanet"):
            raise ConfigError(
                f"model kind must be fp_classifier, nodule_unet or retinanet, got {self.kind!r}."
            )
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if self.kind == "nodule_unet" and len(self.strides) != len(self.channels) - 1:
            raise ConfigError(
                f"nodule_unet needs len(strides) == len(channels) - 1, got channels="
                f"{self.channels} strides={self.strides}."
            )
        if self.kind == "fp_classifier" and len(self.strides) != len(self.channels):
            raise ConfigError(
                f"fp_classifier needs one stride per channel entry, got channels="
                f"{self.channels} strides={self.strides}."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`.

        Raises:
            ConfigError: A key is unknown, a value has the wrong shape, or the version is
                newer than this medsnowball understands.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown model config key(s) {unknown}; expected some of {sorted(known)}."
            )
        version = int(data.get("version", CONFIG_VERSION))
        if version > CONFIG_VERSION:
            raise ConfigError(
                f"model config version {version} is newer than this medsnowball supports "
                f"({CONFIG_VERSION}); upgrade medsnowball."
            )
        values = dict(data)
        patch = values.get("patch", {})
        if isinstance(patch, dict):
            pknown = {f.name for f in dataclasses.fields(PatchSpec)}
            bad = sorted(set(patch) - pknown)
            if bad:
                raise ConfigError(f"unknown patch key(s) {bad}; expected some of {sorted(pknown)}.")
            values["patch"] = PatchSpec(**patch)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"invalid model config: {exc}") from exc


def default_fp_classifier_config() -> ModelConfig:
    """Default false-positive classifier: 32^3 patches at 1 mm, MONAI ``Classifier``."""
    return ModelConfig(
        kind="fp_classifier",
        patch=PatchSpec(size_zyx=(32, 32, 32), spacing_zyx=(1.0, 1.0, 1.0)),
        channels=(16, 32, 64, 128),
        strides=(2, 2, 2, 2),
    )


def default_nodule_unet_config() -> ModelConfig:
    """Default nodule segmenter: 32^3 patches at 0.8 mm (25.6 mm field), MONAI ``UNet``."""
    return ModelConfig(
        kind="nodule_unet",
        patch=PatchSpec(size_zyx=(32, 32, 32), spacing_zyx=(0.8, 0.8, 0.8)),
        channels=(16, 32, 64, 128),
        strides=(2, 2, 2),
        dropout=0.0,
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


__all__ = [
    "CONFIG_VERSION",
    "ModelConfig",
    "ModelKind",
    "PatchSpec",
    "default_fp_classifier_config",
    "default_nodule_unet_config",
]
