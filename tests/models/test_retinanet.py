"""RetinaNet detector: built like the MONAI model-zoo ``lung_nodule_ct_detection`` bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medsnowball.core.errors import MissingDependencyError
from medsnowball.models.retinanet import (
    default_retinanet_config,
    torchvision_available,
)

#: The bundle's network definition, in MONAI bundle-config syntax (expressions evaluated
#: by monai.bundle.ConfigParser), as its configs/inference.json declares it. When
#: MEDSNOWBALL_LUNG_NODULE_BUNDLE points at a downloaded bundle, its own file is used.
_BUNDLE_NETWORK_DEF: dict[str, Any] = {
    "backbone": "$monai.networks.nets.resnet.resnet50(spatial_dims=3,n_input_channels=1,"
    "conv1_t_stride=[2,2,1],conv1_t_size=[7,7,7])",
    "feature_extractor": "$monai.apps.detection.networks.retinanet_network."
    "resnet_fpn_feature_extractor(@backbone,3,False,[1,2],None)",
    "network_def": {
        "_target_": "RetinaNet",
        "spatial_dims": 3,
        "num_classes": 1,
        "num_anchors": 3,
        "feature_extractor": "@feature_extractor",
        "size_divisible": [16, 16, 8],
    },
}


def _bundle_config() -> dict[str, Any]:
    root = os.environ.get("MEDSNOWBALL_LUNG_NODULE_BUNDLE")
    if root and (Path(root) / "configs" / "inference.json").is_file():
        full = json.loads((Path(root) / "configs" / "inference.json").read_text())
        return {k: full[k] for k in ("backbone", "feature_extractor", "network_def")}
    return _BUNDLE_NETWORK_DEF


def test_default_config_matches_the_bundle() -> None:
    cfg = default_retinanet_config()
    assert cfg.extra["base_anchor_shapes_xyz"] == [[6, 8, 4], [8, 6, 5], [10, 10, 6]]
    assert cfg.patch.spacing_zyx == (1.25, 0.703125, 0.703125)
    assert (cfg.patch.hu_min, cfg.patch.hu_max) == (-1024.0, 300.0)
    assert cfg.extra["size_divisible_xyz"] == [16, 16, 8]


@pytest.mark.skipif(torchvision_available(), reason="torchvision is installed")
def test_missing_torchvision_raises_a_clear_error() -> None:
    from medsnowball.models.retinanet import build_retinanet_detector, build_retinanet_network

    with pytest.raises(MissingDependencyError, match="torchvision"):
        build_retinanet_network()
    with pytest.raises(MissingDependencyError, match="detection"):
        build_retinanet_detector()


@pytest.mark.skipif(not torchvision_available(), reason="torchvision does not import here")
def test_state_dict_matches_the_bundle_network() -> None:
    from monai.bundle import ConfigParser

    from medsnowball.models.retinanet import build_retinanet_detector, build_retinanet_network

    parser = ConfigParser(_bundle_config())
    bundle_net = parser.get_parsed_content("network_def")
    ours = build_retinanet_network()
    theirs_sd = {k: tuple(v.shape) for k, v in bundle_net.state_dict().items()}
    ours_sd = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    # ResNet-50 stem + layers 1-2 (the FPN returns layers 1 and 2, so 3-4 are dropped),
    # the FPN and the classification / regression heads: 190 tensors, as in the bundle.
    assert len(ours_sd) == 190
    assert ours_sd == theirs_sd
    # the bundle's weights (same keys) load strictly into our network
    from medsnowball.models.checkpoint import load_into

    load_into(ours, bundle_net.state_dict())
    detector = build_retinanet_detector(network=ours)
    assert detector.num_anchors_per_loc == 3


class _BrightestVoxelDetector:
    """Stands in for the network: one box around the brightest voxel of the input."""

    def __init__(self) -> None:
        self.seen_shape: tuple[int, ...] = ()
        self.seen_range: tuple[float, float] = (0.0, 0.0)

    def __call__(self, images: list[Any], use_inferer: bool = False) -> list[dict[str, Any]]:
        import torch

        img = images[0][0]
        self.seen_shape = tuple(img.shape)
        self.seen_range = (float(img.min()), float(img.max()))
        inner = img.clone()
        inner[inner >= 1.0] = 0.0  # ignore the clipped corner voxel
        idx = np.unravel_index(int(torch.argmax(inner)), img.shape)
        c = np.asarray(idx, dtype=np.float32)
        box = torch.tensor([[*(c - 4), *(c + 4)]])
        return [{"box": box, "label": torch.tensor([0]), "label_scores": torch.tensor([0.8])}]


@pytest.mark.parametrize("flip_x", [False, True])
def test_detector_wrapper_maps_boxes_back_to_world(flip_x: bool) -> None:
    from medsnowball.core.volume import CTVolume, ImageGeometry
    from medsnowball.models.retinanet_inference import RetinaNetNoduleDetector

    shape = (40, 64, 64)
    spacing = (2.5, 0.9, 0.9)
    direction = np.diag([-1.0, 1.0, 1.0]) if flip_x else np.eye(3)
    geom = ImageGeometry(shape, spacing, (10.0, -20.0, -300.0), direction)
    arr = np.full(shape, -900.0, np.float32)
    centre_zyx = (22.0, 30.0, 41.0)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    r2 = sum(((g - c) * s) ** 2 for g, c, s in zip((z, y, x), centre_zyx, spacing, strict=True))
    arr[:] = np.where(r2 < 9.0, 250.0 - 10.0 * r2, -900.0)  # 6 mm ball peaking at its centre
    arr[0, 0, 0] = 2000.0  # clipped to the window top ...
    arr[0, 0, 1] = -2000.0  # ... and bottom
    vol = CTVolume(arr, geom)
    fake = _BrightestVoxelDetector()
    det = RetinaNetNoduleDetector(detector=fake, device="cpu")
    (cand,) = det.detect(vol)
    expected = geom.index_to_world(centre_zyx)
    np.testing.assert_allclose(cand.center_lps, expected, atol=1.3)
    np.testing.assert_allclose(cand.center_zyx, centre_zyx, atol=1.0)
    assert cand.detector == "retinanet"
    assert cand.score == pytest.approx(0.8)
    # resampled to the bundle's grid (0.703125 x 0.703125 x 1.25 mm, x y z) and scaled
    assert fake.seen_shape[2] == pytest.approx(shape[0] * 2.5 / 1.25, abs=2)
    assert fake.seen_shape[0] == pytest.approx(shape[2] * 0.9 / 0.703125, abs=2)
    assert fake.seen_range[0] == pytest.approx(0.0, abs=1e-6)
    assert fake.seen_range[1] <= 1.0
    assert cand.diameter_mm == pytest.approx(8 * (0.703125 * 2 + 1.25) / 3, rel=1e-3)
