"""The recipe that trains the weights shipped in ``medsnowball/models/weights``.

Reproduce them with one command (about 30-60 min on a 2-core CPU)::

    python -m medsnowball.training.recipes --out runs/shipped --threads 2 --install

Data: synthetic chest CT phantoms from :mod:`medsnowball.synth` generated in memory
(seeds ``seed .. seed + n_train + n_val - 1``, default 10000..10047; benchmarks must use
other seeds), 512 x 512 slices at 0.6-0.9 mm, slice spacing 1.0-2.5 mm, six nodules each
(LUNA16 size distribution 3-30 mm, solid / part-solid / ground-glass, parenchymal /
juxtapleural / juxtavascular). Negatives for the classifier: the classical detector's
candidates that match no nodule when ``medsnowball.detection`` runs, else random lung
points (vessels, pleura, parenchyma).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medsnowball.core.errors import MedsnowballError
from medsnowball.models.config import default_fp_classifier_config, default_nodule_unet_config
from medsnowball.models.inference import WEIGHTS_DIR
from medsnowball.training.commands import train_classifier_on_patches, train_segmenter_on_patches
from medsnowball.training.loop import TrainConfig
from medsnowball.training.patch_data import (
    TrainingCase,
    classifier_patches,
    segmentation_patches,
)

logger = logging.getLogger(__name__)

DEFAULT_SEED = 10000
RECIPE_COMMAND = "python -m medsnowball.training.recipes --out runs/shipped --threads 2 --install"


def phantom_config(seed: int, nodules: int = 6) -> Any:
    """The randomised phantom configuration of training case ``seed``."""
    from medsnowball.synth import PhantomConfig, random_nodule_specs

    rng = np.random.default_rng(seed)
    sz = float(rng.choice([1.0, 1.25, 1.5, 2.0, 2.5]))
    sxy = float(rng.uniform(0.6, 0.9))
    nz = round(240.0 / sz)
    return PhantomConfig(
        shape_zyx=(nz, 512, 512),
        spacing_zyx=(sz, sxy, sxy),
        seed=seed,
        nodules=tuple(random_nodule_specs(rng, nodules)),
    )


def _detector_candidates(volume: Any, lung_labels: Any) -> np.ndarray | None:
    """Classical detector candidates (world mm) or None when detection is unavailable."""
    try:
        from medsnowball.detection import detect_candidates
        from medsnowball.lung import segment_lungs

        cands = detect_candidates(volume, segment_lungs(volume))
    except (ImportError, MedsnowballError) as exc:
        logger.info("classical detector unavailable (%s): random lung negatives", exc)
        return None
    return np.asarray([c.center_lps for c in cands], dtype=np.float64).reshape(-1, 3)


def synthetic_cases(seeds: list[int], use_detector: bool = True) -> Iterator[TrainingCase]:
    """Generate phantoms one at a time as :class:`TrainingCase` (nothing written to disk)."""
    from medsnowball.synth import generate_phantom

    for s in seeds:
        t0 = time.perf_counter()
        ph = generate_phantom(phantom_config(s))
        nods = ph.truth.nodules
        cands = _detector_candidates(ph.volume, ph.lung_labels) if use_detector else None
        yield TrainingCase(
            volume=ph.volume,
            boxes=np.array([[*n.center_lps, *([n.diameter_mm] * 3)] for n in nods]).reshape(-1, 6),
            seg=np.asarray(ph.nodule_labels),
            seg_labels=tuple(int(n.id) for n in nods),
            lung=np.asarray(ph.lung_labels) > 0,
            candidates_lps=cands,
            case_id=f"synth{s}",
        )
        logger.info("phantom %d ready in %.1fs", s, time.perf_counter() - t0)


def build_patch_sets(
    seeds: list[int], use_detector: bool, seed: int, training: bool
) -> dict[str, np.ndarray]:
    """Classifier and U-Net patches of the phantoms ``seeds`` (one pass over the data)."""
    fp_spec = default_fp_classifier_config().patch
    un_spec = default_nodule_unet_config().patch
    xs, ys, sx, sm = [], [], [], []
    for i, case in enumerate(synthetic_cases(seeds, use_detector)):
        x, y, _ = classifier_patches(
            [case],
            fp_spec,
            negatives_per_case=60,
            positive_copies=6 if training else 1,
            seed=seed + i,
        )
        a, m = segmentation_patches([case], un_spec, copies=4 if training else 1, seed=seed + i)
        xs.append(x)
        ys.append(y)
        sx.append(a)
        sm.append(m)
    return {
        "fp_x": np.concatenate(xs),
        "fp_y": np.concatenate(ys),
        "seg_x": np.concatenate(sx),
        "seg_m": np.concatenate(sm),
    }


def train_shipped_models(
    out_dir: str | Path,
    n_train: int = 40,
    n_val: int = 8,
    seed: int = DEFAULT_SEED,
    threads: int = 2,
    classifier_epochs: int = 10,
    unet_epochs: int = 12,
    use_detector: bool = True,
    install: bool = False,
    models: tuple[str, ...] = ("fp", "unet"),
) -> dict[str, Any]:
    """Generate the data, train both models, optionally copy them into the package.

    Returns:
        Summary (timings, best scores, checkpoint paths), also written to
        ``out_dir/summary.json``.
    """
    import torch

    torch.set_num_threads(max(1, threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_seeds = list(range(seed, seed + n_train))
    val_seeds = list(range(seed + n_train, seed + n_train + n_val))
    tr = build_patch_sets(train_seeds, use_detector, seed, training=True)
    va = build_patch_sets(val_seeds, use_detector, seed + 500, training=False)
    t_data = time.perf_counter() - t0
    logger.info(
        "patches: classifier %d (%d positive), U-Net %d; %.0fs",
        len(tr["fp_y"]),
        int(tr["fp_y"].sum()),
        len(tr["seg_x"]),
        t_data,
    )
    recipe = {
        "data": "synthetic phantoms (medsnowball.synth)",
        "train_seeds": [train_seeds[0], train_seeds[-1]],
        "val_seeds": [val_seeds[0], val_seeds[-1]],
        "command": RECIPE_COMMAND,
    }
    summary: dict[str, Any] = {"seconds": {"data": t_data}, "n_patches": {}}
    results: dict[str, Any] = {}
    if "fp" in models:
        t1 = time.perf_counter()
        results["fp"] = train_classifier_on_patches(
            tr["fp_x"],
            tr["fp_y"],
            va["fp_x"],
            va["fp_y"],
            out / "fp_classifier",
            dataclasses.replace(default_fp_classifier_config(), training=recipe),
            TrainConfig(
                epochs=classifier_epochs,
                batch_size=32,
                lr=1e-3,
                patience=4,
                seed=seed,
                threads=threads,
            ),
            n_val_scans=n_val,
        )
        summary["seconds"]["classifier"] = time.perf_counter() - t1
        summary["n_patches"]["classifier"] = len(tr["fp_y"])
    if "unet" in models:
        t2 = time.perf_counter()
        results["unet"] = train_segmenter_on_patches(
            tr["seg_x"],
            tr["seg_m"],
            va["seg_x"],
            va["seg_m"],
            out / "nodule_unet",
            dataclasses.replace(default_nodule_unet_config(), training=recipe),
            TrainConfig(
                epochs=unet_epochs, batch_size=8, lr=2e-3, patience=4, seed=seed, threads=threads
            ),
        )
        summary["seconds"]["unet"] = time.perf_counter() - t2
        summary["n_patches"]["unet"] = len(tr["seg_x"])
    summary["seconds"]["total"] = time.perf_counter() - t0
    names = {"fp": "fp_classifier", "unet": "nodule_unet"}
    for key, res in results.items():
        summary[names[key]] = {
            "best_epoch": res.best_epoch,
            "history": res.history,
            "checkpoint": str(res.best_checkpoint),
        }
        if install and res.best_checkpoint is not None:
            WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(res.best_checkpoint, WEIGHTS_DIR / f"{names[key]}.safetensors")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m medsnowball.training.recipes``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classifier-epochs", type=int, default=10)
    ap.add_argument("--unet-epochs", type=int, default=12)
    ap.add_argument("--no-detector", action="store_true", help="random lung negatives only")
    ap.add_argument("--install", action="store_true", help="copy weights into the package")
    ap.add_argument(
        "--models", default="fp,unet", help="comma-separated subset of fp,unet to train"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train_shipped_models(
        args.out,
        args.n_train,
        args.n_val,
        args.seed,
        args.threads,
        args.classifier_epochs,
        args.unet_epochs,
        not args.no_detector,
        args.install,
        tuple(m.strip() for m in args.models.split(",") if m.strip()),
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
