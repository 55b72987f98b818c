"""MONAI augmentation of training patches and the torch datasets that apply it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


def classifier_augmentation(seed: int = 0) -> Any:
    """Random flips, 90-degree in-plane rotations, small affine jitter, intensity noise.

    Returns:
        A seeded :class:`monai.transforms.Compose` over dicts with ``"image"``
        ``(1, Z, Y, X)`` float tensors.
    """
    return _augmentation(("image",), ("bilinear",), seed)


def segmentation_augmentation(seed: int = 0) -> Any:
    """The same geometry applied to ``"image"`` (bilinear) and ``"label"`` (nearest)."""
    return _augmentation(("image", "label"), ("bilinear", "nearest"), seed)


def _augmentation(keys: tuple[str, ...], modes: tuple[str, ...], seed: int) -> Any:
    from monai.transforms import (
        Compose,
        RandAffined,
        RandFlipd,
        RandGaussianNoised,
        RandRotate90d,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    k = list(keys)
    t = Compose(
        [
            RandFlipd(keys=k, prob=0.5, spatial_axis=0),
            RandFlipd(keys=k, prob=0.5, spatial_axis=1),
            RandFlipd(keys=k, prob=0.5, spatial_axis=2),
            RandRotate90d(keys=k, prob=0.5, max_k=3, spatial_axes=(1, 2)),
            RandAffined(
                keys=k,
                prob=0.5,
                rotate_range=(math.pi / 12,) * 3,
                scale_range=(0.1,) * 3,
                translate_range=(1.5,) * 3,
                mode=list(modes),
                padding_mode="border",
            ),
            RandScaleIntensityd(keys="image", factors=0.05, prob=0.3),
            RandShiftIntensityd(keys="image", offsets=0.02, prob=0.3),
            RandGaussianNoised(keys="image", prob=0.3, std=0.01),
        ]
    )
    t.set_random_state(seed=seed)
    return t


class PatchDataset:
    """Map-style dataset over in-memory patches (a ``torch.utils.data.Dataset``).

    Args:
        images: ``(N, Z, Y, X)`` patches in [0, 1].
        targets: ``(N,)`` class labels, or ``(N, Z, Y, X)`` masks.
        transform: Optional MONAI dict transform (see :func:`classifier_augmentation`).

    Items are ``(image (1, Z, Y, X) float32, target)`` with target ``(1,)`` float32 for
    labels and ``(1, Z, Y, X)`` float32 for masks.
    """

    def __init__(
        self, images: NDArray[Any], targets: NDArray[Any], transform: Any | None = None
    ) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets.")
        self.images = images
        self.targets = targets
        self.transform = transform
        self.dense = targets.ndim > 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        img = torch.from_numpy(np.asarray(self.images[i], dtype=np.float32))[None]
        if self.dense:
            tgt = torch.from_numpy(np.asarray(self.targets[i], dtype=np.float32))[None]
        else:
            tgt = torch.tensor([float(self.targets[i])], dtype=torch.float32)
        if self.transform is not None:
            d = {"image": img, "label": tgt} if self.dense else {"image": img}
            d = self.transform(d)
            img = torch.as_tensor(d["image"]).float()
            if self.dense:
                tgt = (torch.as_tensor(d["label"]) > 0.5).float()
        return img.contiguous(), tgt


__all__ = ["PatchDataset", "classifier_augmentation", "segmentation_augmentation"]
