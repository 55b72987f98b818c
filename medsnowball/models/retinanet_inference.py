"""Whole-volume nodule detection with the MONAI RetinaNet (model-zoo bundle weights).

Preprocessing and post-processing follow the ``lung_nodule_ct_detection`` bundle's
inference config: the CT is put in RAS orientation, resampled to 0.703125 x 0.703125 x
1.25 mm, HU -1024..300 scaled to 0..1; the detector runs with its sliding-window inferer;
box centres are mapped back to world coordinates and returned as LPS
:class:`~medsnowball.core.findings.Candidate` objects on the source grid.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from medsnowball.core.errors import CheckpointError
from medsnowball.core.findings import Candidate
from medsnowball.core.volume import CTVolume
from medsnowball.models.config import ModelConfig
from medsnowball.models.inference import autocast_context, resolve_device
from medsnowball.models.retinanet import (
    build_retinanet_detector,
    build_retinanet_network,
    default_retinanet_config,
    load_retinanet_weights,
)

logger = logging.getLogger(__name__)


class RetinaNetNoduleDetector:
    """Run the bundle's RetinaNet on a :class:`CTVolume`.

    Args:
        weights: The bundle's ``models/model.pt`` or a ``.safetensors`` checkpoint of
            ``medsnowball train detector`` (needed unless ``detector`` is given).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        config: A ``retinanet`` config (default: the one stored in a ``.safetensors``
            checkpoint, else the bundle's).
        amp: Mixed precision on CUDA.
        detector: A ready detector object (``detector([image], use_inferer=True)`` ->
            ``[{"box": (N, 6) xyzxyz voxels, "label_scores": (N,)}]``); for tests or custom
            networks.

    Raises:
        MissingDependencyError: torchvision missing (when building the network).
        CheckpointError: Weights missing or incompatible.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        config: ModelConfig | None = None,
        amp: bool = True,
        detector: Any | None = None,
    ) -> None:
        state = None
        if config is None and weights is not None and str(weights).endswith(".safetensors"):
            # a medsnowball checkpoint (``medsnowball train detector``) carries its config;
            # read it once for both the config and the weights
            from medsnowball.models.checkpoint import load_checkpoint

            ckpt = load_checkpoint(weights)
            if ckpt.config.kind != "retinanet":
                raise CheckpointError(
                    f"checkpoint {weights} holds a {ckpt.config.kind!r} model, not a RetinaNet "
                    "detector."
                )
            config, state = ckpt.config, ckpt.state_dict
        self.config = config or default_retinanet_config()
        self.device = resolve_device(device)
        self.amp = amp
        if detector is None:
            if weights is None:
                raise CheckpointError(
                    "RetinaNetNoduleDetector needs the bundle's weights: pass the path of "
                    "lung_nodule_ct_detection/models/model.pt."
                )
            net = build_retinanet_network(self.config)
            if state is not None:
                from medsnowball.models.checkpoint import load_into

                load_into(net, state, weights)
            else:
                load_retinanet_weights(net, weights)
            net.to(self.device)
            detector = build_retinanet_detector(self.config, network=net)
            detector.eval()
        self.detector = detector

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        """Working voxel size (x, y, z) mm."""
        sz, sy, sx = self.config.patch.spacing_zyx
        return (sx, sy, sz)

    def preprocess(self, volume: CTVolume) -> Any:
        """RAS-oriented, resampled, intensity-scaled ``MetaTensor`` ``(1, X, Y, Z)``."""
        from monai.transforms import Compose, Orientation, ScaleIntensityRange, Spacing

        from medsnowball.io.monai_bridge import to_metatensor

        t = Compose(
            [
                Orientation(axcodes="RAS"),
                Spacing(pixdim=self.spacing_xyz, mode="bilinear"),
                ScaleIntensityRange(
                    a_min=self.config.patch.hu_min,
                    a_max=self.config.patch.hu_max,
                    b_min=0.0,
                    b_max=1.0,
                    clip=True,
                ),
            ]
        )
        return t(to_metatensor(volume, dtype=np.float32))

    def detect(self, volume: CTVolume, min_score: float = 0.0) -> list[Candidate]:
        """Detect nodules.

        Args:
            volume: The CT.
            min_score: Drop detections scoring below this.

        Returns:
            Candidates (world LPS centres, indices on ``volume``'s grid, box-mean
            diameter), highest score first.
        """
        import torch

        img = self.preprocess(volume)
        affine = np.asarray(img.affine, dtype=np.float64)  # voxel (i, j, k) -> RAS mm
        with torch.inference_mode(), autocast_context(self.device, self.amp):
            out = self.detector([img.as_tensor().to(self.device)], use_inferer=True)[0]
        boxes = np.asarray(torch.as_tensor(out["box"]).float().cpu()).reshape(-1, 6)
        scores = np.asarray(torch.as_tensor(out["label_scores"]).float().cpu()).reshape(-1)
        found = []
        for box, score in zip(boxes, scores, strict=True):
            if score < min_score:
                continue
            centre_vox = (box[:3] + box[3:]) / 2.0
            ras = affine[:3, :3] @ centre_vox + affine[:3, 3]
            lps = (-ras[0], -ras[1], ras[2])
            size_mm = np.abs(box[3:] - box[:3]) * np.asarray(self.spacing_xyz)
            zyx = volume.world_to_index(lps)
            found.append(
                Candidate(
                    center_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
                    center_zyx=(float(zyx[0]), float(zyx[1]), float(zyx[2])),
                    score=float(min(1.0, max(0.0, score))),
                    diameter_mm=float(size_mm.mean()),
                    features={
                        "box_x_mm": float(size_mm[0]),
                        "box_y_mm": float(size_mm[1]),
                        "box_z_mm": float(size_mm[2]),
                    },
                    detector="retinanet",
                )
            )
        found.sort(key=lambda c: -c.score)
        return found


__all__ = ["RetinaNetNoduleDetector"]
