"""Fixtures of the training tests: tiny synthetic patch sets with known labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from medsnowball.models.config import ModelConfig, PatchSpec

SIZE = 16


def sphere_patches(
    n: int, rng: np.random.Generator, with_nodule: bool
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Noisy lung-like patches in [0, 1]; positives hold a bright sphere near the centre,
    negatives a bright tube (vessel) through it."""
    z, y, x = np.mgrid[:SIZE, :SIZE, :SIZE].astype(np.float32)
    imgs = np.empty((n, SIZE, SIZE, SIZE), np.float32)
    masks = np.zeros((n, SIZE, SIZE, SIZE), np.uint8)
    for i in range(n):
        base = 0.1 + 0.03 * rng.standard_normal((SIZE, SIZE, SIZE)).astype(np.float32)
        c = (SIZE - 1) / 2 + rng.uniform(-1, 1, 3)
        if with_nodule:
            r = rng.uniform(2.5, 5.0)
            inside = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r**2
        else:
            r = rng.uniform(1.0, 2.0)
            axis = rng.integers(3)
            d = [(z - c[0]) ** 2, (y - c[1]) ** 2, (x - c[2]) ** 2]
            inside = sum(d[k] for k in range(3) if k != axis) < r**2
        base[inside] = 0.75 + 0.03 * rng.standard_normal(int(inside.sum()))
        imgs[i] = np.clip(base, 0, 1)
        masks[i] = inside
    return imgs, masks


@pytest.fixture
def make_sphere_patches() -> Callable[..., tuple[NDArray[np.float32], NDArray[np.uint8]]]:
    """The :func:`sphere_patches` generator, for tests that need their own sets."""
    return sphere_patches


@pytest.fixture(scope="session")
def classifier_patch_set() -> dict[str, NDArray[np.float32]]:
    rng = np.random.default_rng(0)
    p, _ = sphere_patches(48, rng, True)
    n, _ = sphere_patches(48, rng, False)
    vp, _ = sphere_patches(12, rng, True)
    vn, _ = sphere_patches(12, rng, False)
    return {
        "x": np.concatenate([p, n]),
        "y": np.r_[np.ones(48), np.zeros(48)].astype(np.float32),
        "vx": np.concatenate([vp, vn]),
        "vy": np.r_[np.ones(12), np.zeros(12)].astype(np.float32),
    }


@pytest.fixture
def tiny_classifier_config() -> ModelConfig:
    return ModelConfig(
        kind="fp_classifier",
        patch=PatchSpec(size_zyx=(SIZE,) * 3, spacing_zyx=(1.0, 1.0, 1.0)),
        channels=(8, 16, 32),
        strides=(2, 2, 2),
        dropout=0.0,
    )


@pytest.fixture
def tiny_unet_config() -> ModelConfig:
    return ModelConfig(
        kind="nodule_unet",
        patch=PatchSpec(size_zyx=(SIZE,) * 3, spacing_zyx=(1.0, 1.0, 1.0)),
        channels=(8, 16, 32),
        strides=(2, 2),
        dropout=0.0,
    )
