"""Independent validation benchmark (issue 11): data the project never trained or tuned on.

Both shipped pipelines (``lung_nodule_classical``, training-free, and
``lung_nodule_screening``, the default) run end to end on scans of **style B**
(:mod:`medsnowball.validation.style_b`), a second chest-CT anatomy and scanner style designed
independently of the training generator (:mod:`medsnowball.synth`), in two arms:

* ``synthetic``: style-B anatomy with synthetic nodule shapes (ellipsoid, lobulated,
  spiculated);
* ``lidc``: style-B anatomy with **real nodule shapes**: LIDC-IDRI radiologists' contours
  (:mod:`medsnowball.validation.lidc`), type from the readers' texture ratings.

Seeds come from the held-out registry (:mod:`medsnowball.validation.registry`), which every
training entry point refuses to read. Each run appends its figures to a ledger
(``benchmarks/results/heldout_ledger.jsonl``), so how often the held-out set was looked at
is on record.

Printed per arm and pipeline:

* CPM (LUNA16 FP rates 1/8 ... 8 per scan) with a bootstrap 95 % CI over scans;
* sensitivity and false positives per scan of the *reported* nodules (the pipeline's
  threshold and nodule cap, as a user sees them);
* candidate-stage recall (nodule hit by any scored candidate) for nodules >= 6 mm;
* sensitivity by type, size band and location at the threshold, ground-glass sensitivity at
  4 FP per scan;
* for reported nodules >= 5 mm matching a truth nodule: median absolute error of the
  Lung-RADS mean diameter against the same measurement of the exact truth mask, share of
  volumes within +-15 % of the exact truth volume, type accuracy; exam-level Lung-RADS
  agreement (pipeline vs the guideline applied to the truth nodules);
* seconds per scan and the process's peak RSS.

Usage::

    python benchmarks/bench_generalization.py [--cases 12] [--arms synthetic,lidc]
        [--pipelines lung_nodule_classical,lung_nodule_screening] [--threads 2]
        [--bootstrap 1000] [--no-ledger]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

LEDGER = Path(__file__).parent / "results" / "heldout_ledger.jsonl"
#: Nodules per scan (style B places them; the issue's independent set had ~4 per scan).
NODULES_PER_SCAN = 4
SIZE_BANDS = ((3.0, 6.0, "3-6 mm"), (6.0, 10.0, "6-10 mm"), (10.0, 100.0, ">= 10 mm"))
MEASURE_MIN_MM = 5.0


def _size_band(d: float) -> str:
    return next(name for lo, hi, name in SIZE_BANDS if lo <= d < hi) if d >= 3.0 else "< 3 mm"


def make_case(arm: str, seed: int) -> Any:
    """One held-out style-B scan of ``arm`` for ``seed`` (refused if not held out)."""
    from medsnowball.validation import registry
    from medsnowball.validation.style_b import generate_style_b, random_style_b_config

    registry.require_heldout_seed(seed)
    rng = np.random.default_rng(seed)
    if arm == "lidc":
        from medsnowball.validation.lidc import sample_lidc_shapes

        shapes = sample_lidc_shapes(rng, NODULES_PER_SCAN)
    else:
        from medsnowball.validation.style_b import random_synthetic_shapes

        shapes = random_synthetic_shapes(rng, NODULES_PER_SCAN)
    return generate_style_b(random_style_b_config(seed), shapes)


def truth_records(phantom: Any) -> tuple[list[Any], list[Any]]:
    """Truth nodules for matching, and their exact-mask measurements as Nodule records."""
    from scipy import ndimage

    from medsnowball.core.findings import Nodule, NoduleType
    from medsnowball.evaluation.matching import TruthNodule
    from medsnowball.measure.axes import axial_axes

    labels = np.asarray(phantom.nodule_labels)
    spacing = phantom.volume.spacing_zyx
    boxes = ndimage.find_objects(labels)
    truth, measured = [], []
    for n in phantom.truth.nodules:
        truth.append(
            TruthNodule(
                tuple(n.center_lps),
                float(n.diameter_mm),
                n.type,
                n.location,
                id=int(n.id),
                volume_mm3=float(n.volume_mm3),
            )
        )
        box = boxes[n.id - 1] if n.id - 1 < len(boxes) else None
        if box is None:
            measured.append(None)
            continue
        axes = axial_axes(labels[box] == n.id, spacing)
        solid = float(n.solid_diameter_mm) if n.type == "part_solid" else 0.0
        measured.append(
            Nodule(
                id=int(n.id),
                center_lps=tuple(n.center_lps),
                score=1.0,  # type: ignore[arg-type]
                diameter_mm=axes.mean_diameter_mm,
                long_axis_mm=axes.long_axis_mm,
                short_axis_mm=axes.short_axis_mm,
                volume_mm3=float(n.volume_mm3),
                equivalent_diameter_mm=float(n.diameter_mm),
                type=NoduleType(n.type),
                solid_component_mm=axes.mean_diameter_mm if n.type == "solid" else solid,
                mean_hu=0.0,
            )
        )
    return truth, measured


class ArmStats:
    """Accumulates one (arm, pipeline) pair's matches and measurements over scans."""

    def __init__(self) -> None:
        self.cand_matches: list[Any] = []
        self.reported_matches: list[Any] = []
        self.diam_err: list[float] = []
        self.vol_err: list[float] = []
        self.type_ok: list[bool] = []
        self.rads_ok: list[bool] = []
        self.seconds: list[float] = []
        self.capped = 0
        self.status: dict[str, int] = defaultdict(int)

    def add(self, result: Any, truth: list[Any], measured: list[Any], seconds: float) -> None:
        from medsnowball.evaluation.matching import match_candidates
        from medsnowball.report.guidelines import assess

        self.seconds.append(seconds)
        self.status[result.status] += 1
        if any("More than" in w for w in result.warnings):
            self.capped += 1
        self.cand_matches.append(
            match_candidates(list(result.candidates), truth, min_diameter_mm=3.0)
        )
        rep = match_candidates(list(result.nodules), truth, min_diameter_mm=3.0)
        self.reported_matches.append(rep)
        for i, t in enumerate(truth):
            ref = measured[i]
            j = int(rep.hit_prediction[i])
            if ref is None or j < 0 or t.diameter_mm < MEASURE_MIN_MM:
                continue
            got = result.nodules[j]
            self.diam_err.append(abs(got.diameter_mm - ref.diameter_mm))
            self.vol_err.append((got.volume_mm3 - ref.volume_mm3) / ref.volume_mm3)
            self.type_ok.append(got.type.value == t.type)
        truth_cat = assess([m for m in measured if m is not None])[0].lung_rads
        got_cat = result.assessment.lung_rads if result.assessment is not None else "?"
        self.rads_ok.append(truth_cat == got_cat)


def _threshold_sensitivity(matches: list[Any], threshold: float, keep: Any) -> tuple[int, int]:
    """Relevant nodules passing ``keep`` that were hit with a score >= ``threshold``.

    A missed nodule's hit score is ``-inf``; it never counts, not even for
    ``threshold=-inf`` ("hit by any prediction").
    """
    hit = total = 0
    for m in matches:
        for t, s, rel in zip(m.truth, m.hit_score, m.relevant, strict=True):
            if rel and keep(t):
                total += 1
                hit += int(np.isfinite(s) and s >= threshold)
    return hit, total


def summarise(name: str, st: ArmStats, threshold: float, n_boot: int) -> dict[str, Any]:
    """Print one (arm, pipeline) block and return its figures."""
    from medsnowball.evaluation.froc import froc

    fr = froc(st.cand_matches, n_bootstrap=n_boot, seed=0)
    n_scans = len(st.reported_matches)
    n_nod = sum(m.n_nodules for m in st.reported_matches)
    tp = sum(int(np.sum(np.isfinite(m.nodule_scores))) for m in st.reported_matches)
    fps = sum(len(m.fp_scores) for m in st.reported_matches)
    big_hit, big_n = _threshold_sensitivity(st.cand_matches, -np.inf, lambda t: t.diameter_mm >= 6)
    thr4 = fr.threshold_at(4.0)
    gg_hit, gg_n = _threshold_sensitivity(st.cand_matches, thr4, lambda t: t.type == "ground_glass")
    ci = fr.cpm_ci or (float("nan"), float("nan"))
    out: dict[str, Any] = {
        "cpm": fr.cpm,
        "cpm_ci": list(ci),
        "n_scans": n_scans,
        "n_nodules": n_nod,
        "sensitivity_at_threshold": tp / max(1, n_nod),
        "fp_per_scan_at_threshold": fps / max(1, n_scans),
        "candidate_recall_ge6mm": big_hit / max(1, big_n),
        "n_ge6mm": big_n,
        "ggo_sensitivity_at_4fp": gg_hit / max(1, gg_n),
        "n_ggo": gg_n,
        "median_abs_diameter_error_mm": float(np.median(st.diam_err)) if st.diam_err else None,
        "share_volume_within_15pct": float(np.mean(np.abs(st.vol_err) <= 0.15))
        if st.vol_err
        else None,
        "median_abs_volume_error": float(np.median(np.abs(st.vol_err))) if st.vol_err else None,
        "type_accuracy": float(np.mean(st.type_ok)) if st.type_ok else None,
        "lung_rads_agreement": float(np.mean(st.rads_ok)) if st.rads_ok else None,
        "n_measured": len(st.diam_err),
        "median_seconds_per_scan": float(np.median(st.seconds)),
        "scans_at_nodule_cap": st.capped,
        "status": dict(st.status),
    }
    print(f"\n### {name} (threshold {threshold:.4f}): {n_scans} scans, {n_nod} nodules >= 3 mm")
    print(
        f"CPM {fr.cpm:.3f} (95 % CI {ci[0]:.3f}-{ci[1]:.3f}, {n_boot} bootstrap samples over scans)"
    )
    print("| FP/scan | " + " | ".join(f"{f:g}" for f in fr.fp_rates) + " |")
    print("|---|" + "---|" * len(fr.fp_rates))
    print("| sensitivity | " + " | ".join(f"{s:.3f}" for s in fr.sensitivities) + " |")
    print(
        f"At the threshold (reported nodules): sensitivity {out['sensitivity_at_threshold']:.3f}, "
        f"{out['fp_per_scan_at_threshold']:.2f} FP per scan; scans at the nodule cap: {st.capped}; "
        f"status {dict(st.status)}"
    )
    print(
        f"Candidate recall, nodules >= 6 mm: {big_hit}/{big_n}; ground-glass sensitivity at "
        f"4 FP/scan: {gg_hit}/{gg_n}"
    )
    print("| group | hit at threshold / n |\n|---|---|")
    groups = [
        (f"type {k}", (lambda t, k=k: t.type == k)) for k in ("solid", "part_solid", "ground_glass")
    ]
    groups += [
        (f"size {b}", (lambda t, b=b: _size_band(t.diameter_mm) == b)) for *_, b in SIZE_BANDS
    ]
    groups += [
        (f"location {k}", (lambda t, k=k: t.location == k))
        for k in sorted({t.location for m in st.reported_matches for t in m.truth} - {None})
    ]
    out["groups"] = {}
    for label, keep in groups:
        h, n = _threshold_sensitivity(st.reported_matches, -np.inf, keep)
        if n:
            out["groups"][label] = [h, n]
            print(f"| {label} | {h}/{n} ({h / n:.2f}) |")
    if st.diam_err:
        print(
            f"Measurement ({len(st.diam_err)} reported nodules >= {MEASURE_MIN_MM:g} mm): "
            f"median |mean-diameter error| {out['median_abs_diameter_error_mm']:.2f} mm, "
            f"volume within +-15 %: {out['share_volume_within_15pct']:.2f} "
            f"(median |error| {out['median_abs_volume_error']:.1%}), "
            f"type accuracy {out['type_accuracy']:.2f}"
        )
    print(
        f"Lung-RADS exam agreement: {out['lung_rads_agreement']:.2f}; "
        f"median {out['median_seconds_per_scan']:.1f} s per scan"
    )
    return out


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=12, help="scans per arm")
    ap.add_argument("--first-seed", type=int, default=None, help="default: the registry's first")
    ap.add_argument("--arms", default="synthetic,lidc")
    ap.add_argument("--pipelines", default="lung_nodule_classical,lung_nodule_screening")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--no-ledger", action="store_true", help="do not record this look")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import torch

    from medsnowball.pipeline import Pipeline
    from medsnowball.validation import registry

    torch.set_num_threads(args.threads)
    first = registry.STYLE_B_SEEDS.start if args.first_seed is None else args.first_seed
    pipes = {p: Pipeline.from_yaml(p) for p in args.pipelines.split(",")}
    figures: dict[str, Any] = {}
    for a, arm in enumerate(args.arms.split(",")):
        stats = {p: ArmStats() for p in pipes}
        for i in range(args.cases):
            seed = first + 1000 * a + i
            t0 = time.perf_counter()
            ph = make_case(arm, seed)
            gen_s = time.perf_counter() - t0
            truth, measured = truth_records(ph)
            for p, pipe in pipes.items():
                t0 = time.perf_counter()
                res = pipe.run(ph.volume, keep_arrays=False, case_id=f"{arm}_{seed}")
                stats[p].add(res, truth, measured, time.perf_counter() - t0)
            print(
                f"{arm} seed {seed}: {len(truth)} nodules, generated in {gen_s:.1f} s, "
                f"shape {ph.volume.shape}, "
                f"spacing {tuple(round(s, 2) for s in ph.volume.spacing_zyx)}",
                flush=True,
            )
        print(
            f"\n## Arm '{arm}': style B, seeds "
            f"{first + 1000 * a}-{first + 1000 * a + args.cases - 1} "
            "(held out: never used for training or tuning)"
        )
        for p, pipe in pipes.items():
            figures[f"{arm}/{p}"] = summarise(
                f"{arm} / {p}", stats[p], pipe.threshold, args.bootstrap
            )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\nPeak RSS of this process: {peak_gb:.2f} GB")
    if not args.no_ledger:
        LEDGER.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": _commit(),
            "cases_per_arm": args.cases,
            "first_seed": first,
            "figures": figures,
            "peak_rss_gb": peak_gb,
        }
        with LEDGER.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        n_looks = len(LEDGER.read_text(encoding="utf-8").splitlines())
        print(f"Recorded in {LEDGER} (look number {n_looks} at the held-out set).")


if __name__ == "__main__":
    main()
