"""Optional lung segmentation with the ``lungmask`` U-net (R231), when it is installed.

``lungmask`` (github.com/JoHof/lungmask, Apache-2.0) labels the right lung 1 and the left
lung 2, as medsnowball does. It is never required: without the package, or without its
weights in the torch hub cache (it downloads them on first use, which fails offline), a
:class:`~medsnowball.core.errors.MissingDependencyError` says what to do.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np

from medsnowball.core.errors import MissingDependencyError
from medsnowball.core.findings import LungSegmentation
from medsnowball.core.volume import CTVolume

log = logging.getLogger(__name__)

MODEL_NAME = "R231"


def _import_lungmask() -> Any:
    try:
        return importlib.import_module("lungmask")
    except ImportError as exc:
        raise MissingDependencyError(
            "The 'lungmask' lung segmentation backend needs the optional lungmask package "
            "(pip install lungmask) and its R231 weights; it is not installed. Use "
            "backend='classical' (the default, no weights needed) instead."
        ) from exc


def segment_with_lungmask(volume: CTVolume) -> LungSegmentation:
    """Segment the lungs with lungmask's R231 model.

    Args:
        volume: The CT.

    Returns:
        The segmentation on the input grid.

    Raises:
        MissingDependencyError: If lungmask is not installed or its weights cannot be
            loaded (e.g. offline without a cached download).
    """
    lungmask = _import_lungmask()
    import SimpleITK as sitk  # noqa: N813

    from medsnowball.lung.segment import make_segmentation

    image = sitk.GetImageFromArray(np.asarray(volume.array, dtype=np.int16))
    image.SetSpacing(volume.geometry.spacing_xyz)
    image.SetOrigin(volume.origin_lps)
    image.SetDirection(tuple(float(v) for v in np.asarray(volume.direction).ravel()))
    try:
        inferer_cls = getattr(lungmask, "LMInferer", None)
        if inferer_cls is not None:
            labels = inferer_cls(modelname=MODEL_NAME).apply(image)
        else:  # lungmask < 0.2.14
            mask_mod = importlib.import_module("lungmask.mask")
            labels = mask_mod.apply(image, mask_mod.get_model("unet", MODEL_NAME))
    except (OSError, RuntimeError, ValueError) as exc:
        raise MissingDependencyError(
            f"lungmask is installed but its {MODEL_NAME} model could not be loaded or run "
            f"({exc}). Download the weights once with network access, or use "
            "backend='classical'."
        ) from exc
    labels = np.asarray(labels, dtype=np.uint8)
    if labels.shape != volume.shape:
        raise MissingDependencyError(
            f"lungmask returned labels of shape {labels.shape} for an image of shape "
            f"{volume.shape}; this lungmask version is not supported, use backend='classical'."
        )
    labels[labels > 2] = 0
    return make_segmentation(labels, volume.geometry)


__all__ = ["MODEL_NAME", "segment_with_lungmask"]
