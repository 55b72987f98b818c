"""The recipe that trains the weights shipped in ``medsnowball/models/weights``.

Reproduce them with one command (about 46 min on a 2-core CPU)::

    python -m medsnowball.training.recipes --out runs/shipped --threads 2 --install

Data: synthetic chest CT phantoms from :mod:`medsnowball.synth` generated in memory
(seeds ``seed .. seed + n_train + n_val - 1``, default 10000..10047; benchmarks must use
other seeds), 512 x 512 slices at 0.6-0.9 mm, slice spacing 1.0-2.5 mm, six nodules each
(LUNA16 size distribution 3-30 mm, solid / part-solid / ground-glass, parenchymal /
juxtapleural / juxtavascular); the classifier also sees ``n_enriched`` extra phantoms
(seeds ``seed + ENRICHED_SEED_OFFSET ...``, default 10100..10147) with ten 3-15 mm
nodules each, mostly attached and sub-solid (:func:`enriched_phantom_config`), the
kinds it otherwise misses. Classifier negatives: the classical detector's
highest-scoring candidates that match no nodule (``HARD_NEGATIVES`` per scan) plus
``RANDOM_NEGATIVES`` random lung points (random lung points only when
``medsnowball.detection`` is unavailable); positives: truth centres with jittered copies
and the detector's hits. After the classifier, the combination of detector score and
CNN probability (averaged over 8 patch flips) is fitted on the validation scans'
candidates and stored in the checkpoint (:mod:`medsnowball.training.stacking`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
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
    candidate_hits,
    classifier_patches,
    segmentation_patches,
)
from medsnowball.validation.registry import refuse_heldout

logger = logging.getLogger(__name__)

DEFAULT_SEED = 10000
RECIPE_COMMAND = "python -m medsnowball.training.recipes --out runs/shipped --threads 2 --install"
#: Classifier training patches per scan: copies per nodule (1 exact + jittered), the
#: highest-scoring detector false positives, random lung points.
POSITIVE_COPIES = 4
VALIDATION_CANDIDATES = "validation_candidates.npz"
HARD_NEGATIVES = 80
RANDOM_NEGATIVES = 16
#: Nodules per enriched classifier-training phantom (:func:`enriched_phantom_config`).
ENRICHED_NODULES = 10
#: Enriched phantoms use seeds ``seed + ENRICHED_SEED_OFFSET ...``.
ENRICHED_SEED_OFFSET = 100
#: Default number of enriched phantoms, classifier epochs and early-stopping patience.
N_ENRICHED = 48
CLASSIFIER_EPOCHS = 30
CLASSIFIER_PATIENCE = 10


def phantom_config(seed: int, nodules: int = 6, **spec_options: Any) -> Any:
    """The randomised phantom configuration of training case ``seed``.

    Args:
        seed: Seed of the scanner geometry and the nodules.
        nodules: Number of nodules.
        **spec_options: Passed to :func:`medsnowball.synth.random_nodule_specs` (size
            range, type and location weights); default: its LUNA16-like mix.
    """
    from medsnowball.synth import PhantomConfig, random_nodule_specs

    rng = np.random.default_rng(seed)
    sz = float(rng.choice([1.0, 1.25, 1.5, 2.0, 2.5]))
    sxy = float(rng.uniform(0.6, 0.9))
    nz = round(240.0 / sz)
    return PhantomConfig(
        shape_zyx=(nz, 512, 512),
        spacing_zyx=(sz, sxy, sxy),
        seed=seed,
        nodules=tuple(random_nodule_specs(rng, nodules, **spec_options)),
    )


def _detector_candidates(volume: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Classical detector candidates: (positions world mm ``(m, 3)``, scores ``(m,)``), or
    None when detection is unavailable."""
    try:
        from medsnowball.detection import detect_candidates
        from medsnowball.lung import segment_lungs

        cands = detect_candidates(volume, segment_lungs(volume))
    except (ImportError, MedsnowballError) as exc:
        logger.info("classical detector unavailable (%s): random lung negatives", exc)
        return None
    lps = np.asarray([c.center_lps for c in cands], dtype=np.float64).reshape(-1, 3)
    return lps, np.asarray([c.score for c in cands], dtype=np.float64)


def enriched_phantom_config(seed: int) -> Any:
    """An extra classifier-training phantom rich in the nodules the classifier finds hard.

    Same scanner geometry as :func:`phantom_config`, but ``ENRICHED_NODULES`` nodules of
    3-15 mm, more often attached (juxtapleural / juxtavascular 40 % / 40 %, against
    30 % / 20 %) and sub-solid (part-solid / ground-glass 25 % / 25 %, against 15 % / 15 %).
    """
    return phantom_config(
        seed,
        ENRICHED_NODULES,
        max_mm=15.0,
        type_weights=(0.5, 0.25, 0.25),
        location_weights=(0.2, 0.4, 0.4),
    )


def synthetic_cases(
    seeds: list[int],
    use_detector: bool = True,
    make_config: Callable[[int], Any] = phantom_config,
) -> Iterator[TrainingCase]:
    """Generate phantoms one at a time as :class:`TrainingCase` (nothing written to disk).

    Args:
        seeds: Phantom seeds.
        use_detector: Run the classical detector on each phantom (hard negatives).
        make_config: ``seed -> PhantomConfig`` (:func:`phantom_config` or
            :func:`enriched_phantom_config`).
    """
    from medsnowball.synth import generate_phantom

    refuse_heldout(seeds=seeds)
    for s in seeds:
        t0 = time.perf_counter()
        ph = generate_phantom(make_config(s))
        nods = ph.truth.nodules
        det = _detector_candidates(ph.volume) if use_detector else None
        yield TrainingCase(
            volume=ph.volume,
            boxes=np.array([[*n.center_lps, *([n.diameter_mm] * 3)] for n in nods]).reshape(-1, 6),
            seg=np.asarray(ph.nodule_labels),
            seg_labels=tuple(int(n.id) for n in nods),
            lung=np.asarray(ph.lung_labels) > 0,
            candidates_lps=None if det is None else det[0],
            case_id=f"synth{s}",
            candidate_scores=None if det is None else det[1],
        )
        logger.info("phantom %d ready in %.1fs", s, time.perf_counter() - t0)


def _validation_candidates(case: TrainingCase, index: int, spec: Any) -> dict[str, np.ndarray]:
    """Patches and labels of every detector candidate of a validation case (for stacking)."""
    from medsnowball.models.patches import extract_patches

    lps = case.candidates_lps if case.candidates_lps is not None else np.zeros((0, 3))
    scores = case.candidate_scores if case.candidate_scores is not None else np.zeros(len(lps))
    zyx = np.atleast_2d(case.volume.world_to_index(lps)) if len(lps) else np.zeros((0, 3))
    return {
        "cand_x": extract_patches(case.volume.array, case.volume.spacing_zyx, zyx, spec).astype(
            np.float16
        ),
        "cand_case": np.full(len(lps), index, dtype=np.int64),
        "cand_lps": lps,
        "cand_score": scores.astype(np.float64),
        "cand_hit": candidate_hits(case).astype(np.int64),
        "truth_case": np.full(len(case.boxes), index, dtype=np.int64),
        "truth_lps": case.boxes[:, :3],
        "truth_diameter": case.diameters_mm,
    }


def build_patch_sets(
    seeds: list[int],
    use_detector: bool,
    seed: int,
    training: bool,
    models: tuple[str, ...] = ("fp", "unet"),
    make_config: Callable[[int], Any] = phantom_config,
) -> dict[str, np.ndarray]:
    """Classifier and U-Net patches of the phantoms ``seeds`` (one pass over the data).

    Training: positives = truth centres with jittered copies plus the detector's hits;
    negatives = the ``HARD_NEGATIVES`` highest-scoring detector false positives plus
    ``RANDOM_NEGATIVES`` random lung points per scan (random lung points only without the
    detector). Validation: one patch per nodule against every detector false positive
    (model selection on their CPM), and every detector candidate with its score and hit
    label (``cand_*``, ``truth_*``: fitting the score combination).
    """
    fp_spec = default_fp_classifier_config().patch
    un_spec = default_nodule_unet_config().patch
    parts: dict[str, list[np.ndarray]] = {}

    def add(key: str, value: np.ndarray) -> None:
        parts.setdefault(key, []).append(value)

    for i, case in enumerate(synthetic_cases(seeds, use_detector, make_config)):
        if "fp" in models and training:
            x, y, _ = classifier_patches(
                [case],
                fp_spec,
                negatives_per_case=HARD_NEGATIVES + RANDOM_NEGATIVES,
                positive_copies=POSITIVE_COPIES,
                seed=seed + i,
                hard_negatives=HARD_NEGATIVES if case.candidates_lps is not None else None,
                random_negatives=RANDOM_NEGATIVES,
                candidate_positives=True,
            )
            add("fp_x", x)
            add("fp_y", y)
        elif "fp" in models:
            if case.candidates_lps is None:
                x, y, _ = classifier_patches(
                    [case], fp_spec, negatives_per_case=60, positive_copies=1, seed=seed + i
                )
            else:
                vc = _validation_candidates(case, i, fp_spec)
                for key, value in vc.items():
                    add(key, value)
                tx, _, _ = classifier_patches(
                    [dataclasses.replace(case, candidates_lps=None)],
                    fp_spec,
                    negatives_per_case=0,
                    positive_copies=1,
                    seed=seed + i,
                )
                neg = vc["cand_x"][vc["cand_hit"] == 0]
                x = np.concatenate([tx, neg])
                y = np.r_[np.ones(len(tx), np.int64), np.zeros(len(neg), np.int64)]
            add("fp_x", x)
            add("fp_y", y)
        if "unet" in models:
            a, m = segmentation_patches([case], un_spec, copies=4 if training else 1, seed=seed + i)
            add("seg_x", a)
            add("seg_m", m)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _cached_patch_sets(
    cache_dir: str | Path | None,
    seeds: list[int],
    use_detector: bool,
    seed: int,
    training: bool,
    models: tuple[str, ...],
    make_config: Callable[[int], Any] = phantom_config,
) -> dict[str, np.ndarray]:
    """:func:`build_patch_sets`, stored in / read from ``cache_dir`` when given."""
    if cache_dir is None:
        return build_patch_sets(seeds, use_detector, seed, training, models, make_config)
    settings = [POSITIVE_COPIES, HARD_NEGATIVES, RANDOM_NEGATIVES, ENRICHED_NODULES]
    ident = [seeds[0], seeds[-1], use_detector, seed, training, sorted(models)]
    key = json.dumps([*ident, settings, make_config.__name__])
    name = "patches_" + hashlib.sha256(key.encode()).hexdigest()[:12] + ".npz"
    path = Path(cache_dir) / name
    if path.is_file():
        logger.info("patch sets read from %s", path)
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    sets = build_patch_sets(seeds, use_detector, seed, training, models, make_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = sets
    np.savez(path, **arrays)
    return sets


def train_shipped_models(
    out_dir: str | Path,
    n_train: int = 40,
    n_val: int = 8,
    seed: int = DEFAULT_SEED,
    threads: int = 2,
    classifier_epochs: int = CLASSIFIER_EPOCHS,
    unet_epochs: int = 12,
    use_detector: bool = True,
    install: bool = False,
    models: tuple[str, ...] = ("fp", "unet"),
    cache_dir: str | Path | None = None,
    n_enriched: int = N_ENRICHED,
) -> dict[str, Any]:
    """Generate the data, train both models, optionally copy them into the package.

    ``cache_dir``: keep the generated patch sets there and reuse them when the seeds and
    sampling settings match (re-running with other optimisation settings skips the data
    generation). ``n_enriched``: extra classifier-training phantoms from
    :func:`enriched_phantom_config` (seeds ``seed + ENRICHED_SEED_OFFSET ...``).

    Returns:
        Summary (timings, best scores, checkpoint paths), also written to
        ``out_dir/summary.json``.
    """
    first_enriched = seed + ENRICHED_SEED_OFFSET
    refuse_heldout(
        seeds=[
            *range(seed, seed + n_train + n_val),
            *range(first_enriched, first_enriched + n_enriched),
        ]
    )
    import torch

    torch.set_num_threads(max(1, threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_seeds = list(range(seed, seed + n_train))
    val_seeds = list(range(seed + n_train, seed + n_train + n_val))
    tr = _cached_patch_sets(cache_dir, train_seeds, use_detector, seed, True, models)
    va = _cached_patch_sets(cache_dir, val_seeds, use_detector, seed + 500, False, models)
    enriched_seeds = (
        list(range(first_enriched, first_enriched + n_enriched)) if "fp" in models else []
    )
    if enriched_seeds:
        en = _cached_patch_sets(
            cache_dir,
            enriched_seeds,
            use_detector,
            enriched_seeds[0],
            True,
            ("fp",),
            enriched_phantom_config,
        )
        tr["fp_x"] = np.concatenate([tr["fp_x"], en["fp_x"]])
        tr["fp_y"] = np.concatenate([tr["fp_y"], en["fp_y"]])
    t_data = time.perf_counter() - t0
    logger.info(
        "patches: classifier %d (%d positive), U-Net %d; %.0fs",
        len(tr.get("fp_y", ())),
        int(np.sum(tr.get("fp_y", 0))),
        len(tr.get("seg_x", ())),
        t_data,
    )
    if "cand_x" in va:
        kept: dict[str, Any] = {k: v for k, v in va.items() if k.startswith(("cand_", "truth_"))}
        np.savez(out / VALIDATION_CANDIDATES, **kept)
    recipe = {
        "data": "synthetic phantoms (medsnowball.synth)",
        "train_seeds": [train_seeds[0], train_seeds[-1]],
        "enriched_classifier_seeds": [enriched_seeds[0], enriched_seeds[-1]]
        if enriched_seeds
        else [],
        "val_seeds": [val_seeds[0], val_seeds[-1]],
        "command": RECIPE_COMMAND,
        "negatives": (
            f"{HARD_NEGATIVES} highest-scoring classical-detector false positives + "
            f"{RANDOM_NEGATIVES} random lung points per scan"
            if use_detector
            else "random lung points"
        ),
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
                patience=CLASSIFIER_PATIENCE,
                seed=seed,
                threads=threads,
            ),
            n_val_scans=n_val,
        )
        summary["seconds"]["classifier"] = time.perf_counter() - t1
        summary["n_patches"]["classifier"] = len(tr["fp_y"])
        best = results["fp"].best_checkpoint
        if best is not None and (out / VALIDATION_CANDIDATES).is_file():
            # the score combination is fitted on the validation scans' detector candidates
            from medsnowball.training.stacking import fit_and_store_combiner

            t3 = time.perf_counter()
            summary["combiner"] = fit_and_store_combiner(
                best, out / VALIDATION_CANDIDATES, threads=threads
            )
            summary["seconds"]["combiner"] = time.perf_counter() - t3
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
    ap.add_argument("--classifier-epochs", type=int, default=CLASSIFIER_EPOCHS)
    ap.add_argument(
        "--n-enriched",
        type=int,
        default=N_ENRICHED,
        help="extra classifier phantoms rich in attached / sub-solid nodules",
    )
    ap.add_argument("--unet-epochs", type=int, default=12)
    ap.add_argument("--no-detector", action="store_true", help="random lung negatives only")
    ap.add_argument("--install", action="store_true", help="copy weights into the package")
    ap.add_argument("--cache", default=None, help="folder to keep / reuse generated patches")
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
        args.cache,
        args.n_enriched,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
