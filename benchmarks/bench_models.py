"""Benchmark of the learned stages (issue 5, section 6).

Prints:
1. Time the learned stages add on a 512 x 512 x 300 CT at 2 CPU threads: FP reduction
   of N candidates (default 300) and U-Net segmentation of the top K (default 10).
2. On generated phantoms disjoint from training and from tuning (default seeds
   31000-31019; the training recipe uses 10000-10047, tuning used 21000-21019 and the
   recipe's validation seeds): CPM and sensitivity at 1 / 2 FP per scan of the
   training-free pipeline (``lung_nodule_classical``) and of the default pipeline
   (``lung_nodule_screening``: detector + ``fp_reduce``) on the same cases, their difference,
   the operating point (sensitivity and FP per scan at each pipeline's ``threshold``), and
   ablations of the score combination (CNN alone, geometric mean).
3. Dice of the U-Net vs. the classical segmenter on nodules >= 5 mm, both seeded at the
   truth centres.

The pipelines run exactly as defined in their YAML files, up to the last step that
produces candidates (steps they share are run once per case).

Usage::

    python benchmarks/bench_models.py [--cases 20] [--seed 31000] [--threads 2] [--timing-only]
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
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


def bench_phantom(seed: int):  # type: ignore[no-untyped-def]
    """Benchmark case ``seed``: 512 x 512 at 0.7 mm, 200 mm long, 5 nodules."""
    rng = np.random.default_rng(seed)
    sz = float(rng.choice([0.625, 1.0, 1.25, 2.0, 2.5]))
    return _phantom(seed, (round(200 / sz), 512, 512), (sz, 0.7, 0.7), 5)


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
    fp = FPReducer(args.fp_checkpoint, device="cpu", combine="stacked")
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
    print(f"| total added | | {t_fp + t_un:.2f} (target <= 20) |", flush=True)


def _candidate_prefix(pipe: Any) -> list[Any]:
    """The pipeline's steps up to the last one that provides candidates."""
    last = max(i for i, s in enumerate(pipe.steps) if "candidates" in s.provides)
    return list(pipe.steps[: last + 1])


def run_candidate_stages(pipes: dict[str, Any], volume: Any) -> dict[str, list[Any]]:
    """Run each pipeline up to its final candidates; identical leading steps run once."""
    prefixes = {k: _candidate_prefix(p) for k, p in pipes.items()}
    first = next(iter(pipes.values()))
    ctx0 = first.make_context(volume)
    shared = 0
    steps0 = next(iter(prefixes.values()))
    while shared < min(len(s) for s in prefixes.values()) and all(
        s[shared] == steps0[shared] for s in prefixes.values()
    ):
        shared += 1
    for step in steps0[:shared]:
        step.run(ctx0)
    out = {}
    for name, steps in prefixes.items():
        ctx = copy.copy(ctx0)
        ctx.threshold = pipes[name].threshold
        for step in steps[shared:]:
            step.run(ctx)
        out[name] = list(ctx.candidates)
    return out


def _operating_point(matches: list[Any], threshold: float) -> tuple[float, float]:
    """Sensitivity and FP per scan of candidates scoring >= threshold."""
    nod = np.concatenate([m.nodule_scores for m in matches])
    fps = sum(int(np.sum(m.fp_scores >= threshold)) for m in matches)
    return float(np.mean(nod >= threshold)), fps / max(1, len(matches))


def accuracy(args: argparse.Namespace) -> None:
    import dataclasses

    import torch

    from medsnowball.core.errors import MedsnowballError
    from medsnowball.core.findings import Candidate
    from medsnowball.evaluation.froc import froc
    from medsnowball.evaluation.matching import TruthNodule, match_candidates
    from medsnowball.lung import segment_lungs
    from medsnowball.models import UNetNoduleSegmenter
    from medsnowball.pipeline import Pipeline
    from medsnowball.segmentation import segment_nodule
    from medsnowball.training.metrics import dice

    torch.set_num_threads(args.threads)
    pipes = {
        "classical": Pipeline.from_yaml(args.classical),
        "default": Pipeline.from_yaml(args.default),
    }
    matches: dict[str, list[Any]] = {
        "classical": [],
        "default": [],
        "ablation: CNN probability alone": [],
        "ablation: geometric mean": [],
    }
    un = UNetNoduleSegmenter(args.unet_checkpoint, device="cpu")
    dices: dict[str, list[float]] = {"U-Net": [], "classical": []}
    by_size: dict[str, list[float]] = {"5-8 mm": [], "8-15 mm": [], ">= 15 mm": []}
    t_stage: dict[str, float] = {"candidates": 0.0}
    for i in range(args.cases):
        seed = args.seed + i
        ph = bench_phantom(seed)
        vol = ph.volume
        truth = [
            TruthNodule(tuple(n.center_lps), float(n.diameter_mm), n.type, n.location)  # type: ignore[arg-type]
            for n in ph.truth.nodules
        ]
        t0 = time.perf_counter()
        cands = run_candidate_stages(pipes, vol)
        t_stage["candidates"] += time.perf_counter() - t0
        for name in ("classical", "default"):
            matches[name].append(match_candidates(cands[name], truth, min_diameter_mm=3.0))
        learned = cands["default"]
        if learned and "fp_probability" in learned[0].features:
            p = [float(c.features["fp_probability"]) for c in learned]
            d = [float(c.features["detector_score"]) for c in learned]
            for name, scores in (
                ("ablation: CNN probability alone", p),
                ("ablation: geometric mean", [math.sqrt(a * b) for a, b in zip(p, d, strict=True)]),
            ):
                alt = [
                    dataclasses.replace(c, score=s) for c, s in zip(learned, scores, strict=True)
                ]
                matches[name].append(match_candidates(alt, truth, min_diameter_mm=3.0))
        lungs = segment_lungs(vol)
        labels = np.asarray(ph.nodule_labels)
        for n in ph.truth.nodules:
            if n.diameter_mm < 5.0:
                continue
            c = Candidate(tuple(n.center_lps), tuple(n.center_zyx), 1.0, float(n.diameter_mm))  # type: ignore[arg-type]
            target = labels == n.id
            segs = {"U-Net": un.segment(vol, c)}
            try:
                segs["classical"] = segment_nodule(vol, c, lungs)
            except MedsnowballError:
                segs["classical"] = None  # type: ignore[assignment]
            for name, seg in segs.items():
                full = np.zeros(vol.shape, bool)
                if seg is not None:
                    full[seg.slices] = seg.mask
                dices[name].append(dice(full, target))
            band = (
                "5-8 mm" if n.diameter_mm < 8 else "8-15 mm" if n.diameter_mm < 15 else ">= 15 mm"
            )
            by_size[band].append(dices["U-Net"][-1])
        print(f"case {i + 1}/{args.cases} (seed {seed}) done", flush=True)

    n_nod = sum(m.n_nodules for m in matches["classical"])
    print(
        f"\n## Phantoms disjoint from training and tuning: {args.cases} cases, seeds "
        f"{args.seed}-{args.seed + args.cases - 1}, {n_nod} nodules >= 3 mm"
    )
    print(f"classical = {args.classical}, default = {args.default}")
    print("| candidates scored by | CPM | sens@1 FP/scan | sens@2 FP/scan |")
    print("|---|---|---|---|")
    results = {k: froc(v) for k, v in matches.items() if v}
    for name, r in results.items():
        s = dict(zip(r.fp_rates, r.sensitivities, strict=True))
        print(f"| {name} | {r.cpm:.3f} | {s.get(1.0, np.nan):.3f} | {s.get(2.0, np.nan):.3f} |")
    gain = results["default"].cpm - results["classical"].cpm
    ok = results["default"].cpm >= 0.92 and gain >= 0.03
    print(
        f"\nCPM default {results['default'].cpm:.3f} vs classical {results['classical'].cpm:.3f}: "
        f"difference {gain:+.3f} (targets: >= 0.92 and >= +0.03: {'met' if ok else 'NOT met'})"
    )
    print("\n| pipeline | threshold | sensitivity | FP per scan |")
    print("|---|---|---|---|")
    for name in ("classical", "default"):
        sens, fpr = _operating_point(matches[name], pipes[name].threshold)
        print(f"| {name} | {pipes[name].threshold:.3f} | {sens:.3f} | {fpr:.2f} |")
    print(
        f"(lungs + candidates of both pipelines: {t_stage['candidates'] / args.cases:.1f} s "
        "per case)"
    )
    print("\n| segmenter (seeded at truth centres) | nodules >= 5 mm | mean Dice | median Dice |")
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
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--seed", type=int, default=31000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=300)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--classical", default="lung_nodule_classical")
    ap.add_argument("--default", default="lung_nodule_screening")
    ap.add_argument("--fp-checkpoint", default=None)
    ap.add_argument("--unet-checkpoint", default=None)
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--accuracy-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.accuracy_only:
        timing(args)
    if not args.timing_only:
        accuracy(args)


if __name__ == "__main__":
    main()
