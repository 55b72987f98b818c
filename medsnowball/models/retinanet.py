"""MONAI RetinaNet lung-nodule detector, built as the model-zoo bundle builds it.

The MONAI model-zoo bundle ``lung_nodule_ct_detection`` defines its network as a 3-D
ResNet-50 (first convolution 7x7x7 with stride (2, 2, 1)), a feature pyramid on the
outputs of layers 1 and 2 (:func:`monai.apps.detection.networks.retinanet_network.
resnet_fpn_feature_extractor`), a :class:`RetinaNet` head with one class and three
anchors per location (input sizes divisible by (16, 16, 8)), anchors from
:class:`AnchorGeneratorWithAnchorShape` with feature-map scales (1, 2, 4) and base
shapes (6, 8, 4), (8, 6, 5), (10, 10, 6) voxels, images resampled to 0.703125 x
0.703125 x 1.25 mm (x, y, z, RAS orientation) and HU -1024..300 scaled to 0..1, and
sliding-window inference on 512 x 512 x 192 windows. :func:`build_retinanet_detector`
reproduces that construction so that the bundle's published ``models/model.pt`` loads
into it (:func:`load_retinanet_weights`).

The feature extractor needs ``torchvision``; without it these functions raise
:class:`~medsnowball.core.errors.MissingDependencyError` (install the ``detection``
extra).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from typing import TYPE_CHECKING, Any

from medsnowball.core.errors import ConfigError, MissingDependencyError
from medsnowball.models.config import ModelConfig, PatchSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

logger = logging.getLogger(__name__)

#: Anchor shapes (voxels, x y z order) of the bundle.
BUNDLE_ANCHOR_SHAPES: tuple[tuple[int, int, int], ...] = ((6, 8, 4), (8, 6, 5), (10, 10, 6))
#: Voxel spacing of the bundle in mm, (x, y, z) order.
BUNDLE_SPACING_XYZ: tuple[float, float, float] = (0.703125, 0.703125, 1.25)


def default_retinanet_config() -> ModelConfig:
    """Configuration matching the ``lung_nodule_ct_detection`` bundle."""
    sx, sy, sz = BUNDLE_SPACING_XYZ
    return ModelConfig(
        kind="retinanet",
        patch=PatchSpec(
            size_zyx=(192, 512, 512), spacing_zyx=(sz, sy, sx), hu_min=-1024.0, hu_max=300.0
        ),
        channels=(),
        strides=(),
        dropout=0.0,
        threshold=0.02,
        extra={
            "backbone": "resnet50",
            "conv1_t_size": [7, 7, 7],
            "conv1_t_stride": [2, 2, 1],
            "returned_layers": [1, 2],
            "num_classes": 1,
            "size_divisible_xyz": [16, 16, 8],
            "feature_map_scales": [1, 2, 4],
            "base_anchor_shapes_xyz": [list(s) for s in BUNDLE_ANCHOR_SHAPES],
            "infer_roi_size_xyz": [512, 512, 192],
            "sw_overlap": 0.25,
            "score_thresh": 0.02,
            "topk_candidates_per_level": 1000,
            "nms_thresh": 0.22,
            "detections_per_img": 300,
        },
    )


@functools.cache
def torchvision_available() -> bool:
    """True when ``torchvision`` imports cleanly (needed by MONAI's FPN extractor).

    Probed by importing, not by looking the package up: a torchvision built for another
    torch is *installed* but fails on import (``operator torchvision::nms does not
    exist``), and that must count as unavailable. The answer is cached per process.
    """
    try:
        importlib.import_module("torchvision")
    except (ImportError, RuntimeError) as exc:
        logger.debug("torchvision is not usable: %s", exc)
        return False
    return True


def _require_torchvision() -> None:
    if not torchvision_available():
        raise MissingDependencyError(
            "The MONAI RetinaNet detector needs torchvision, which is not installed. Install "
            "the torchvision build that matches your torch (pip install 'medsnowball[detection]' "
            "or pip install torchvision==<version for your torch>)."
        )


def build_retinanet_network(config: ModelConfig | None = None) -> nn.Module:
    """Build the bundle's ``RetinaNet`` network (backbone + FPN + heads), untrained.

    Args:
        config: A ``retinanet`` configuration; default :func:`default_retinanet_config`.

    Returns:
        :class:`monai.apps.detection.networks.retinanet_network.RetinaNet`.

    Raises:
        MissingDependencyError: torchvision is not installed.
        ConfigError: ``config.kind`` is not ``"retinanet"`` or the backbone is unknown.
    """
    cfg = config or default_retinanet_config()
    if cfg.kind != "retinanet":
        raise ConfigError(f"build_retinanet_network needs kind 'retinanet', got {cfg.kind!r}.")
    _require_torchvision()
    from monai.apps.detection.networks.retinanet_network import (
        RetinaNet,
        resnet_fpn_feature_extractor,
    )
    from monai.networks.nets import resnet

    ex = {**default_retinanet_config().extra, **cfg.extra}
    name = str(ex["backbone"])
    if name not in ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101"):
        raise ConfigError(f"unknown RetinaNet backbone {name!r}; use e.g. 'resnet50'.")
    backbone = getattr(resnet, name)(
        spatial_dims=3,
        n_input_channels=1,
        conv1_t_stride=list(ex["conv1_t_stride"]),
        conv1_t_size=list(ex["conv1_t_size"]),
    )
    extractor = resnet_fpn_feature_extractor(backbone, 3, False, list(ex["returned_layers"]), None)
    return RetinaNet(
        spatial_dims=3,
        num_classes=int(ex["num_classes"]),
        num_anchors=len(ex["base_anchor_shapes_xyz"]),
        feature_extractor=extractor,
        size_divisible=list(ex["size_divisible_xyz"]),
    )


def build_retinanet_detector(
    config: ModelConfig | None = None,
    network: nn.Module | None = None,
    sliding_window_device: str = "cpu",
) -> Any:
    """Build the bundle's ``RetinaNetDetector`` (anchors, box selection, sliding window).

    Args:
        config: A ``retinanet`` configuration; default :func:`default_retinanet_config`.
        network: An already built (and possibly loaded) network; built from ``config``
            when omitted.
        sliding_window_device: Where sliding-window outputs are stitched (the bundle
            uses ``"cpu"``).

    Returns:
        A :class:`monai.apps.detection.networks.retinanet_detector.RetinaNetDetector`
        configured like the bundle's inference config.

    Raises:
        MissingDependencyError: torchvision is not installed.
    """
    cfg = config or default_retinanet_config()
    _require_torchvision()
    from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape

    ex = {**default_retinanet_config().extra, **cfg.extra}
    net = network if network is not None else build_retinanet_network(cfg)
    anchors = AnchorGeneratorWithAnchorShape(
        feature_map_scales=list(ex["feature_map_scales"]),
        base_anchor_shapes=[list(s) for s in ex["base_anchor_shapes_xyz"]],
    )
    detector = RetinaNetDetector(network=net, anchor_generator=anchors, debug=False)
    detector.set_target_keys(box_key="box", label_key="label")
    detector.set_box_selector_parameters(
        score_thresh=float(ex["score_thresh"]),
        topk_candidates_per_level=int(ex["topk_candidates_per_level"]),
        nms_thresh=float(ex["nms_thresh"]),
        detections_per_img=int(ex["detections_per_img"]),
    )
    detector.set_sliding_window_inferer(
        roi_size=list(ex["infer_roi_size_xyz"]),
        overlap=float(ex["sw_overlap"]),
        sw_batch_size=1,
        mode="constant",
        device=sliding_window_device,
    )
    return detector


def load_retinanet_weights(network: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load the bundle's published weights (``models/model.pt``) into ``network``.

    The file is read with ``torch.load(..., weights_only=True)``: no pickled code runs.
    Both a plain state dict and ``{"model": state_dict}`` are accepted.

    Args:
        network: Network from :func:`build_retinanet_network`.
        path: The bundle's ``model.pt``.

    Returns:
        ``network`` with the weights loaded (strict).

    Raises:
        CheckpointError: The file is missing, unsafe, or its keys/shapes do not match.
    """
    from medsnowball.models.checkpoint import load_into, load_state_dict_file

    state = load_state_dict_file(path)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    load_into(network, state, path)
    return network


__all__ = [
    "BUNDLE_ANCHOR_SHAPES",
    "BUNDLE_SPACING_XYZ",
    "build_retinanet_detector",
    "build_retinanet_network",
    "default_retinanet_config",
    "load_retinanet_weights",
    "torchvision_available",
]
