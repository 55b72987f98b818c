"""Learned 3-D models: FP-reduction classifier, nodule U-Net, MONAI RetinaNet detector.

Network builders (:mod:`~medsnowball.models.networks`, :mod:`~medsnowball.models.retinanet`),
checkpoints holding tensors + a JSON config only (:mod:`~medsnowball.models.checkpoint`),
patch extraction at a model's spacing (:mod:`~medsnowball.models.patches`), inference
wrappers (:mod:`~medsnowball.models.inference`) and export (:mod:`~medsnowball.models.export`).
torch / MONAI are imported when a function needs them, not when this package is imported.
"""

from __future__ import annotations

from medsnowball.models.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from medsnowball.models.config import (
    ModelConfig,
    PatchSpec,
    default_fp_classifier_config,
    default_nodule_unet_config,
)
from medsnowball.models.export import export_model
from medsnowball.models.inference import (
    FPReducer,
    UNetNoduleSegmenter,
    get_fp_reducer,
    get_unet_segmenter,
    resolve_device,
)
from medsnowball.models.networks import build_fp_classifier, build_model, build_nodule_unet
from medsnowball.models.retinanet import (
    build_retinanet_detector,
    build_retinanet_network,
    default_retinanet_config,
    load_retinanet_weights,
)

__all__ = [
    "Checkpoint",
    "FPReducer",
    "ModelConfig",
    "PatchSpec",
    "UNetNoduleSegmenter",
    "build_fp_classifier",
    "build_model",
    "build_nodule_unet",
    "build_retinanet_detector",
    "build_retinanet_network",
    "default_fp_classifier_config",
    "default_nodule_unet_config",
    "default_retinanet_config",
    "export_model",
    "get_fp_reducer",
    "get_unet_segmenter",
    "load_checkpoint",
    "load_model",
    "load_retinanet_weights",
    "resolve_device",
    "save_checkpoint",
]
