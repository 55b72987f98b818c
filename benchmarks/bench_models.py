"""Benchmark of the learned stages (issue 5, section 6).

Prints:
1. Time the learned stages add on a 512 x 512 x 300 CT at 2 CPU threads: FP reduction
   of N candidates (default 300) and U-Net segmentation of the top K (default 10).
2. On generated phantoms disjoint from training (seeds 20000+; training used
   10000..10047): CPM of the classical candidates vs. the same candidates re-scored by
   the FP-reduction CNN, and Dice of the U-Net vs. the classical segmenter on nodules
   >= 5 mm (seeded at the truth centres). Needs medsnowball.lung / detection /
   segmentation / evaluation; parts whose stage is unavailable are reported as skipped.

Usage::

    python benchmarks/bench_models.py [--cases 10] [--threads 2] [--timing-only]
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np


def _phantom(seed: int, shape: tuple[int, int, int], spacing: tuple[float, float, float], n: int):  # type: ignore[no-untyped-def]
    from medsnowball.synth import PhantomConfig, generate_phantom, random_nodule_specs

    rng = np.random.default_rng(seed)
    specs = tuple(random_nodule_specs(rng, n))
    return generate_phantom(
        PhantomConfig(shape_zyx=shape, spacing_zyx=spacing, seed=seed, nodules=specs)
    )


def timing(args: argparse.Namespace) -> None:
    import torch

    from medsnowball.core.findings import Candidate
    from medsnowball.models import FPReducer, UNetNoduleSegmenter

    torch.set_num_threads(args.threads)
    ph = _phantom(20999, (300, 512, 512), (1.0, 0.7, 0.7), 6)
    vol = ph.volume
    lung = np.argwhere(np.asarray(ph.lung_labels) > 0)
    rng = np.random.default_rng(0)
    pts = lung[rng.choice(len(lung), args.candidates, replace=False)].astype(float)
    cands = [
        Candidate(tuple(vol.index_to_world(p)), tuple(p), 0.5, 6.0)  # type: ignore[arg-type]
        for p in pts
    ]
    fp = FPReducer(args.fp_checkpoint, device="cpu")
    un = UNetNoduleSegmenter(args.unet_checkpoint, device="cpu")
    fp.score(vol, cands[:8])  # warm-up
    t0 = time.perf_counter()
    fp.score(vol, cands)
    t_fp = time.perf_counter() - t0
    t0 = time.perf_counter()
    un.segment_many(vol, cands[: args.top_k])
    t_un = time.perf_counter() - t0
    print(f"\n## Learned-stage time, 512x512x300 CT, {args.threads} threads")
    print("| stage | items | seconds |")
    print("|---|---|---|")
    print(f"| FP reduction | {len(cands)} candidates | {t_fp:.2f} |")
    print(f"| U-Net segmentation | {args.top_k} nodules | {t_un:.2f} |")
    print(f"| total added | | {t_fp + t_un:.2f} (target <= 20) |")


def accuracy(args: argparse.Namespace) -> None:
    import torch

    from medsnowball.core.errors import MedsnowballError
    from medsnowball.core.findings import Candidate
    from medsnowball.evaluation.froc import froc
    from medsnowball.evaluation.matching import TruthNodule, match_candidates
    from medsnowball.models import FPReducer, UNetNoduleSegmenter
    from medsnowball.models.inference import rescore
    from medsnowball.training.metrics import dice, patch_cpm, roc_auc
    from medsnowball.training.patch_data import TrainingCase, negative_centers

    torch.set_num_threads(args.threads)
    fp = FPReducer(args.fp_checkpoint, device="cpu")
    un = UNetNoduleSegmenter(args.unet_checkpoint, device="cpu")
    matches: dict[str, list[Any]] = {"classical": [], "FP-CNN": [], "geometric mean": []}
    dices: dict[str, list[float]] = {"U-Net": [], "classical": []}
    by_size: dict[str, list[float]] = {"5-8 mm": [], "8-15 mm": [], ">= 15 mm": []}
    detection_error: str | None = None
    t_det = 0.0
    patch_scores: list[float] = []
    patch_labels: list[int] = []
    for i in range(args.cases):
        seed = args.seed + i
        rng = np.random.default_rng(seed)
        sz = float(rng.choice([0.625, 1.0, 1.25, 2.0, 2.5]))
        ph = _phantom(seed, (round(200 / sz), 512, 512), (sz, 0.7, 0.7), 5)
        vol = ph.volume
        lungs = None
        if detection_error is None:
            try:
                from medsnowball.detection import detect_candidates
                from medsnowball.lung import segment_lungs

                t0 = time.perf_counter()
                lungs = segment_lungs(vol)
                cands = detect_candidates(vol, lungs)
                t_det += time.perf_counter() - t0
            except (ImportError, MedsnowballError) as exc:
                detection_error = str(exc)
            else:
                truth = [
                    TruthNodule(tuple(n.center_lps), float(n.diameter_mm), n.type, n.location)  # type: ignore[arg-type]
                    for n in ph.truth.nodules
                ]
                centers = np.asarray([c.center_zyx for c in cands]).reshape(-1, 3)
                prob = fp.probabilities(vol, centers)
                for name, scored in (
                    ("classical", cands),
                    ("FP-CNN", rescore(cands, prob, "replace")),
                    ("geometric mean", rescore(cands, prob, "geometric")),
                ):
                    matches[name].append(match_candidates(scored, truth, min_diameter_mm=3.0))
        labels = np.asarray(ph.nodule_labels)
        case = TrainingCase(
            volume=vol,
            boxes=np.array(
                [[*n.center_lps, *([n.diameter_mm] * 3)] for n in ph.truth.nodules]
            ).reshape(-1, 6),
            lung=np.asarray(ph.lung_labels) > 0,
        )
        neg = negative_centers(case, 100, np.random.default_rng(seed))
        p_pos = fp.probabilities(vol, case.centers_zyx)
        p_neg = fp.probabilities(vol, neg)
        patch_scores.extend([*p_pos, *p_neg])
        patch_labels.extend([1] * len(p_pos) + [0] * len(p_neg))
        for n in ph.truth.nodules:
            if n.diameter_mm < 5.0:
                continue
            c = Candidate(tuple(n.center_lps), tuple(n.center_zyx), 1.0, float(n.diameter_mm))  # type: ignore[arg-type]
            target = labels == n.id
            segs = {"U-Net": un.segment(vol, c)}
            try:
                from medsnowball.segmentation import segment_nodule

                segs["classical"] = segment_nodule(vol, c, lungs)
            except (ImportError, MedsnowballError):
                pass
            for name, seg in segs.items():
                full = np.zeros(vol.shape, bool)
                full[seg.slices] = seg.mask
                dices[name].append(dice(full, target))
            band = (
                "5-8 mm" if n.diameter_mm < 8 else "8-15 mm" if n.diameter_mm < 15 else ">= 15 mm"
            )
            by_size[band].append(dices["U-Net"][-1])
        print(f"case {i + 1}/{args.cases} done", flush=True)
    print(f"\n## Phantoms disjoint from training: {args.cases} cases (seeds {args.seed}+)")
    if detection_error is None:
        results = {k: froc(v) for k, v in matches.items()}
        print("| scorer | CPM | sens@1 FP/scan | sens@2 |")
        print("|---|---|---|---|")
        for name, r in results.items():
            s = dict(zip(r.fp_rates, r.sensitivities, strict=True))
            s1, s2 = s.get(1.0, np.nan), s.get(2.0, np.nan)
            print(f"| {name} | {r.cpm:.3f} | {s1:.3f} | {s2:.3f} |")
        gain = results["FP-CNN"].cpm - results["classical"].cpm
        print(f"\nCPM gain of FP-CNN over classical: {gain:+.3f} (target >= +0.03)")
        print(f"(classical lungs + detection: {t_det / max(1, args.cases):.1f} s per case)")
    else:
        print(f"CPM comparison skipped: classical detection unavailable ({detection_error})")
    print(
        f"\nFP-CNN on truth-centred nodule patches vs 100 random lung points per case "
        f"(half on vessels, a quarter on the pleura): AUC "
        f"{roc_auc(patch_scores, patch_labels):.3f}, patch CPM "
        f"{patch_cpm(patch_scores, patch_labels, args.cases):.3f}"
    )
    print("\n| segmenter | nodules >= 5 mm | mean Dice | median Dice |")
    print("|---|---|---|---|")
    for name, d in dices.items():
        if d:
            print(f"| {name} | {len(d)} | {np.mean(d):.3f} | {np.median(d):.3f} |")
    print("\n| U-Net Dice by size | n | mean |")
    print("|---|---|---|")
    for band, d in by_size.items():
        if d:
            print(f"| {band} | {len(d)} | {np.mean(d):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--seed", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=300)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--fp-checkpoint", default=None)
    ap.add_argument("--unet-checkpoint", default=None)
    ap.add_argument("--timing-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    timing(args)
    if not args.timing_only:
        accuracy(args)


if __name__ == "__main__":
    main()
