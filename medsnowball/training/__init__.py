"""Training of the learned models: datalists, patch sampling, augmentation, train loops.

Command functions for the CLI: :func:`train_classifier`, :func:`train_segmenter`,
:func:`evaluate_model`, :func:`export_model`; datalist converters
:func:`luna16_to_datalist`, :func:`lidc_to_datalist`, :func:`synthetic_to_datalist`.
"""

from __future__ import annotations

from medsnowball.training.commands import (
    evaluate_model,
    export_model,
    train_classifier,
    train_classifier_on_patches,
    train_segmenter,
    train_segmenter_on_patches,
)
from medsnowball.training.datalist import (
    lidc_to_datalist,
    luna16_to_datalist,
    read_datalist,
    synthetic_to_datalist,
    write_datalist,
)
from medsnowball.training.detector import (
    evaluate_detector,
    load_trained_detector,
    small_retinanet_config,
    train_detector,
)
from medsnowball.training.loop import TrainConfig, TrainResult, fit

__all__ = [
    "TrainConfig",
    "TrainResult",
    "evaluate_detector",
    "evaluate_model",
    "export_model",
    "fit",
    "lidc_to_datalist",
    "load_trained_detector",
    "luna16_to_datalist",
    "read_datalist",
    "small_retinanet_config",
    "synthetic_to_datalist",
    "train_classifier",
    "train_classifier_on_patches",
    "train_detector",
    "train_segmenter",
    "train_segmenter_on_patches",
    "write_datalist",
]
