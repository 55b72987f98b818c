"""RetinaNet detector training: a tiny run lowers the loss, resumes, and its checkpoint
round-trips into the inference detector.

Test configuration (documented in docs/detector.md): ``small_retinanet_config`` (ResNet-10
backbone, stride-2 first convolution, 4 mm voxels) on three 32x64x64 phantoms at 4 mm with
16-20 mm nodules, 16x32x32 patches, two patches per scan. Needs torchvision (the
``detection`` extra); skipped without it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medsnowball.models.retinanet import torchvision_available

if not torchvision_available():
    pytest.skip("torchvision does not import beside this torch build", allow_module_level=True)

from medsnowball.training.detector import (
    detector_preprocessing,
    evaluate_detector,
    load_trained_detector,
    small_retinanet_config,
    train_detector,
)

SPACING_MM = 4.0
PATCH_ZYX = (16, 32, 32)


@pytest.fixture(scope="module")
def phantom_datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two training phantoms and one validation phantom, two big nodules each."""
    from medsnowball.io import write_image
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom
    from medsnowball.training.datalist import write_datalist

    out = tmp_path_factory.mktemp("detector_data")
    items = []
    for i in range(3):
        ph = generate_phantom(
            PhantomConfig(
                shape_zyx=(32, 64, 64),
                spacing_zyx=(SPACING_MM,) * 3,
                seed=100 + i,
                nodules=(NoduleSpec(16.0), NoduleSpec(20.0, location="juxtapleural")),
            )
        )
        nods = ph.truth.nodules
        assert len(nods) == 2
        items.append(
            {
                "image": str(write_image(ph.volume, out / f"case{i}.nii.gz")),
                "box": [[*map(float, n.center_lps), *[float(n.diameter_mm)] * 3] for n in nods],
                "label": [0, 0],
            }
        )
    return write_datalist(out / "datalist.json", {"training": items[:2], "validation": items[2:]})


def _fixed_batch(datalist: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    """One patch centred on each training nodule (deterministic), in voxel boxes."""
    import torch
    from monai.transforms import Compose

    from medsnowball.training.datalist import read_datalist
    from medsnowball.training.detector import _detection_item

    cfg = small_retinanet_config(SPACING_MM)
    pre = Compose(detector_preprocessing(cfg, pad_to_xyz=PATCH_ZYX[::-1]))
    images, targets = [], []
    half = np.asarray(PATCH_ZYX[::-1]) // 2
    for item in read_datalist(datalist)["training"]:
        d = pre(_detection_item(item))
        img, boxes = d["image"].as_tensor(), torch.as_tensor(d["box"]).float()
        shape = np.asarray(img.shape[1:])
        for b in boxes:
            c = ((b[:3] + b[3:]) / 2).numpy().round().astype(int)
            lo = np.clip(c - half, 0, shape - 2 * half)
            sl = tuple(slice(int(a), int(a + 2 * h)) for a, h in zip(lo, half, strict=True))
            images.append(img[(slice(None), *sl)])
            inside = torch.as_tensor(lo, dtype=torch.float32).repeat(2)
            keep = (
                (boxes[:, :3] >= inside[:3])
                & (boxes[:, 3:] <= inside[:3] + 2 * torch.as_tensor(half))
            ).all(1)
            targets.append(
                {
                    "box": boxes[keep] - inside,
                    "label": torch.zeros(int(keep.sum()), dtype=torch.long),
                }
            )
    return images, targets


def _loss_on(state: dict[str, Any] | None, images: list[Any], targets: list[Any]) -> float:
    """Detector loss (cls + box) of the given weights (None: the seeded initialisation)."""
    import torch

    from medsnowball.models.retinanet import build_retinanet_detector, build_retinanet_network
    from medsnowball.training.detector import configure_for_training
    from medsnowball.training.loop import seed_everything

    seed_everything(0)  # the same seed train_detector initialises with
    net = build_retinanet_network(small_retinanet_config(SPACING_MM))
    if state is not None:
        net.load_state_dict(state)
    det = configure_for_training(build_retinanet_detector(small_retinanet_config(SPACING_MM), net))
    det.train()
    torch.manual_seed(1)  # hard-negative sampling
    with torch.no_grad():
        losses = det(images, targets)
    return float(losses["classification"] + losses["box_regression"])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_tiny_training_lowers_the_loss_resumes_and_round_trips(
    phantom_datalist: Path, tmp_path: Path
) -> None:
    from medsnowball.io.cases import load_ct
    from medsnowball.models.checkpoint import load_checkpoint

    out = tmp_path / "det"
    kwargs: dict[str, Any] = {
        "batch_size": 2,
        "patch_size_zyx": PATCH_ZYX,
        "lr": 1e-3,
        "val_every": 2,
        "patience": 3,
        "warmup_epochs": 0,
        "seed": 0,
        "device": "cpu",
        "threads": 2,
        "model_config": small_retinanet_config(SPACING_MM),
        "tensorboard": False,
    }
    first = train_detector(phantom_datalist, out, epochs=2, **kwargs)
    assert first.epochs_run == 2
    rows = _rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1.0", "2.0"]
    assert math.isnan(float(rows[0]["val_cpm"]))  # validation only every 2nd epoch
    assert 0.0 <= float(rows[1]["val_cpm"]) <= 1.0
    loss_epoch1 = rows[0]["train_loss"]

    res = train_detector(phantom_datalist, out, epochs=4, resume=True, **kwargs)
    rows = _rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1.0", "2.0", "3.0", "4.0"]
    assert rows[0]["train_loss"] == loss_epoch1  # resumed: epochs 1-2 were not rerun
    assert all(float(r["steps"]) == 2 and math.isfinite(float(r["train_loss"])) for r in rows)
    assert res.best_checkpoint == out / "best.safetensors"

    # training lowered the loss on fixed patches around the training nodules
    images, targets = _fixed_batch(phantom_datalist)
    ck = load_checkpoint(res.best_checkpoint)
    final_state = ck.state_dict if res.best_epoch == 4 else None
    if final_state is None:
        import torch

        final_state = torch.load(out / "last_state.pt", weights_only=True)["model"]
    before, after = _loss_on(None, images, targets), _loss_on(final_state, images, targets)
    assert after < 0.8 * before, (before, after)

    # checkpoint: retinanet config with our spacing, reloads into the inference detector
    assert ck.config.kind == "retinanet"
    assert ck.config.extra["backbone"] == "resnet10"
    assert tuple(ck.config.patch.spacing_zyx) == (SPACING_MM,) * 3
    assert ck.config.training["best_epoch"] == res.best_epoch
    runner = load_trained_detector(res.best_checkpoint, device="cpu")
    volume = load_ct(Path(phantom_datalist).parent / "case2.nii.gz")
    cands = runner.detect(volume)
    assert all(c.detector == "retinanet" and 0.0 <= c.score <= 1.0 for c in cands)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    # the reloaded detector reproduces the validation metrics stored at the best epoch
    again = evaluate_detector(res.best_checkpoint, phantom_datalist, device="cpu")
    stored = ck.config.training["metrics"]
    assert again["cpm"] == pytest.approx(stored["cpm"], abs=1e-9)
    assert again["fp_per_scan"] == pytest.approx(stored["fp_per_scan"], abs=1e-9)


def test_bad_patch_size_and_missing_validation_nodules_are_refused(
    phantom_datalist: Path, tmp_path: Path
) -> None:
    import json

    from medsnowball.core.errors import ConfigError

    with pytest.raises(ConfigError, match="multiples"):
        train_detector(
            phantom_datalist,
            tmp_path / "a",
            patch_size_zyx=(20, 32, 32),
            model_config=small_retinanet_config(SPACING_MM),
        )
    doc = json.loads(Path(phantom_datalist).read_text())
    doc["validation"][0]["box"], doc["validation"][0]["label"] = [], []
    bad = Path(phantom_datalist).parent / "no_val_boxes.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="validation"):
        train_detector(bad, tmp_path / "b", model_config=small_retinanet_config(SPACING_MM))
