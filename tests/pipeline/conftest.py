"""Fixtures of the pipeline tests: tiny NIfTI cases and a fake pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_fake_steps import FAKE_PIPELINE, POISON_HU

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.io import write_image
from medsnowball.pipeline import Pipeline


def _volume(blobs: list[tuple[int, int, int, float]], seed: int) -> CTVolume:
    rng = np.random.default_rng(seed)
    arr = (-800 + rng.normal(0, 5, size=(12, 20, 20))).astype(np.float32)
    for z, y, x, hu in blobs:
        arr[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = hu
    geom = ImageGeometry((12, 20, 20), (2.0, 0.8, 0.8), (-10.0, 20.0, -30.0))
    return CTVolume(arr, geom)


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    """Three cases: ``alpha`` (two blobs), ``beta`` (one faint blob), ``gamma`` (fails)."""
    root = tmp_path / "inputs"
    write_image(_volume([(4, 5, 5, 1500.0), (8, 14, 12, 800.0)], 1), root / "alpha.nii.gz")
    write_image(_volume([(6, 10, 10, 300.0)], 2), root / "sub" / "beta.nii.gz")
    write_image(_volume([(6, 10, 10, POISON_HU)], 3), root / "gamma.mha")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def fake_pipeline() -> Pipeline:
    """load -> explode -> bright_blobs -> fake_report."""
    return Pipeline.from_dict(FAKE_PIPELINE, origin="fake")
