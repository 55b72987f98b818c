"""Data side of detector training: the bundle's settings, a small test configuration, and
the MONAI dict transforms that turn a datalist item into training patches.

Used by :mod:`medsnowball.training.detector` (the training loop). Preprocessing follows
the MONAI model-zoo ``lung_nodule_ct_detection`` bundle's ``train.json``: RAS orientation,
resampling to the model's spacing, HU -1024..300 scaled to 0..1, padding to one patch,
world LPS boxes converted to voxel boxes of the resampled image; augmentation: box crops,
zoom, flips, rot90, small rotations through box masks, intensity changes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medsnowball.models.config import ModelConfig
from medsnowball.models.retinanet import default_retinanet_config

#: Training patch of the bundle, (z, y, x) voxels (its ``patch_size`` is x, y, z 192, 192, 80).
BUNDLE_TRAIN_PATCH_ZYX: tuple[int, int, int] = (80, 192, 192)
#: Matcher / sampler / optimiser settings of the bundle's ``train.json``.
ATSS_CANDIDATES = 4
HNM_BATCH_PER_IMAGE = 64
HNM_POSITIVE_FRACTION = 0.3
HNM_POOL_SIZE = 20.0
HNM_MIN_NEG = 16
SGD_MOMENTUM = 0.9
SGD_WEIGHT_DECAY = 3e-5
#: Metric columns of every metrics.csv row (NaN on epochs without validation).
VAL_KEYS = ("score", "cpm", "sensitivity", "fp_per_scan", "seconds")


def small_retinanet_config(
    spacing_mm: float = 3.0, infer_roi_zyx: Sequence[int] = (32, 64, 64)
) -> ModelConfig:
    """A reduced RetinaNet for tests and quick CPU trials (not the bundle's network).

    ResNet-10 backbone with a stride-2 first convolution on every axis (feature maps at
    1/4, 1/8 and 1/16 of the input), isotropic ``spacing_mm`` voxels, anchors of 4, 6 and
    8 voxels at the finest level, and a sliding window of ``infer_roi_zyx``. The FPN and
    heads keep MONAI's 256 channels. About 8x cheaper per voxel than the bundle's
    ResNet-50 and meant for coarse (2-4 mm) grids where nodules of 10-30 mm span a few
    voxels.

    Args:
        spacing_mm: Working voxel size (mm, all axes).
        infer_roi_zyx: Sliding-window size (voxels, z y x), multiples of 16.

    Returns:
        A ``retinanet`` :class:`ModelConfig`.
    """
    roi = tuple(int(v) for v in infer_roi_zyx)
    base = default_retinanet_config()
    return dataclasses.replace(
        base,
        patch=dataclasses.replace(base.patch, size_zyx=roi, spacing_zyx=(spacing_mm,) * 3),  # type: ignore[arg-type]
        extra={
            **base.extra,
            "backbone": "resnet10",
            "conv1_t_stride": [2, 2, 2],
            "size_divisible_xyz": [16, 16, 16],
            "base_anchor_shapes_xyz": [[4, 4, 4], [6, 6, 6], [8, 8, 8]],
            "infer_roi_size_xyz": list(roi[::-1]),
        },
    )


def _detection_item(item: dict[str, Any]) -> dict[str, Any]:
    """Datalist item -> ``{"image", "box" (N, 6) float32, "label" (N,) int64}``."""
    return {
        "image": item["image"],
        "box": np.asarray(item.get("box", []), dtype=np.float32).reshape(-1, 6),
        "label": np.asarray(item.get("label", []), dtype=np.int64).reshape(-1),
    }


def detector_preprocessing(
    config: ModelConfig, pad_to_xyz: Sequence[int] | None = None
) -> list[Any]:
    """Deterministic transforms: load, RAS, resample, HU scaling, pad, boxes to voxels.

    Args:
        config: The detector's config (spacing and HU window).
        pad_to_xyz: Pad the image (value 0 = below the window) to at least this size.

    Returns:
        MONAI dictionary transforms for ``{"image", "box" (world LPS cccwhd), "label"}``.
    """
    import torch
    from monai.apps.detection.transforms.dictionary import (
        AffineBoxToImageCoordinated,
        ConvertBoxToStandardModed,
    )
    from monai.transforms import (
        EnsureTyped,
        Orientationd,
        ScaleIntensityRanged,
        Spacingd,
        SpatialPadd,
    )

    from medsnowball.transforms import LoadCTd

    sz, sy, sx = config.patch.spacing_zyx
    steps: list[Any] = [
        LoadCTd("image"),
        EnsureTyped(["box"], dtype=torch.float32),
        EnsureTyped(["label"], dtype=torch.long),
        Orientationd("image", axcodes="RAS"),
        Spacingd("image", pixdim=(sx, sy, sz), mode="bilinear"),
        ScaleIntensityRanged(
            "image",
            a_min=config.patch.hu_min,
            a_max=config.patch.hu_max,
            b_min=0.0,
            b_max=1.0,
            clip=True,
        ),
    ]
    if pad_to_xyz is not None:
        steps.append(SpatialPadd("image", spatial_size=list(pad_to_xyz), mode="constant"))
    steps += [
        ConvertBoxToStandardModed("box", mode="cccwhd"),
        AffineBoxToImageCoordinated("box", "image", affine_lps_to_ras=True),
    ]
    return steps


def detector_augmentation(
    patch_size_xyz: Sequence[int], crops_per_image: int, augment: bool = True
) -> list[Any]:
    """The bundle's random transforms: box-aware crops, zoom, flips, rotations, intensity.

    Args:
        patch_size_xyz: Training patch (voxels, x y z).
        crops_per_image: Patches cut from each CT (half of them around a nodule).
        augment: ``False`` keeps only the crops (and the final typing).

    Returns:
        MONAI dictionary transforms (the first returns a list of ``crops_per_image`` dicts).
    """
    import torch
    from monai.apps.detection.transforms.dictionary import (
        BoxToMaskd,
        ClipBoxToImaged,
        MaskToBoxd,
        RandCropBoxByPosNegLabeld,
        RandFlipBoxd,
        RandRotateBox90d,
        RandZoomBoxd,
    )
    from monai.transforms import (
        DeleteItemsd,
        EnsureTyped,
        RandAdjustContrastd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandRotated,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    crop = RandCropBoxByPosNegLabeld(
        "image",
        "box",
        "label",
        spatial_size=list(patch_size_xyz),
        whole_box=True,
        num_samples=crops_per_image,
        pos=1,
        neg=1,
    )
    final = [
        EnsureTyped(["image", "box"], dtype=torch.float32),
        EnsureTyped(["label"], dtype=torch.long),
    ]
    if not augment:
        return [crop, *final]
    box: dict[str, Any] = {"box_keys": "box", "box_ref_image_keys": "image"}
    flips = [RandFlipBoxd("image", **box, prob=0.5, spatial_axis=a) for a in range(3)]
    deg30 = math.pi / 6
    return [
        crop,
        RandZoomBoxd(
            "image",
            **box,
            prob=0.2,
            min_zoom=0.7,
            max_zoom=1.4,
            padding_mode="constant",
            keep_size=True,
        ),
        ClipBoxToImaged("box", "label", "image", remove_empty=True),
        *flips,
        RandRotateBox90d("image", **box, prob=0.75, max_k=3, spatial_axes=(0, 1)),
        BoxToMaskd(
            box_keys="box",
            box_mask_keys="box_mask",
            label_keys="label",
            box_ref_image_keys="image",
            min_fg_label=0,
            ellipse_mask=True,
        ),
        RandRotated(
            ["image", "box_mask"],
            mode=["nearest", "nearest"],
            prob=0.2,
            range_x=deg30,
            range_y=deg30,
            range_z=deg30,
            keep_size=True,
            padding_mode="zeros",
        ),
        MaskToBoxd(box_keys="box", box_mask_keys="box_mask", label_keys="label", min_fg_label=0),
        DeleteItemsd("box_mask"),
        RandGaussianNoised("image", prob=0.1, mean=0.0, std=0.1),
        RandGaussianSmoothd(
            "image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)
        ),
        RandScaleIntensityd("image", factors=0.25, prob=0.15),
        RandShiftIntensityd("image", offsets=0.1, prob=0.15),
        RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5)),
        *final,
    ]


__all__ = [
    "ATSS_CANDIDATES",
    "BUNDLE_TRAIN_PATCH_ZYX",
    "HNM_BATCH_PER_IMAGE",
    "HNM_MIN_NEG",
    "HNM_POOL_SIZE",
    "HNM_POSITIVE_FRACTION",
    "SGD_MOMENTUM",
    "SGD_WEIGHT_DECAY",
    "VAL_KEYS",
    "detector_augmentation",
    "detector_preprocessing",
    "small_retinanet_config",
]
