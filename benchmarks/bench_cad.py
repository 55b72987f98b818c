"""Benchmark of the training-free CAD on generated full-size chest CT phantoms.

Prints (issue 3, section 6):

* detection over ``--n-cases`` phantoms (512 x 512, slice spacing 0.625-2.5 mm, ten nodules
  each of every type and location, seeds ``--seed-base`` ... (default 30000: disjoint from
  the scorer's fitting seeds 7000-7295, the tuning seeds 20000-20019 and the tests' seeds
  < 1000): sensitivity at 2 false
  positives per scan and CPM for nodules >= 4 mm, overall and per size band, type and
  location (LUNA16 matching, ``medsnowball.evaluation``);
* segmentation for nodules >= 5 mm, on the best-scoring candidate that hits each nodule
  (segmentation quality given detection): Dice against the phantom's mask, median
  absolute volume error, median absolute mean-diameter error, per type / location / size;
* per-stage times and peak RSS of load -> lungs -> candidates -> segmentation ->
  measurement on a 512 x 512 x 300 phantom written as NIfTI, run in a fresh process with
  2 threads (candidates >= 0.5, at most 20, are segmented and measured, as the default
  pipeline does).

Usage::

    python benchmarks/bench_cad.py                 # 20 cases + timing (about 15-20 min)
    python benchmarks/bench_cad.py --quick         # 4 small cases + timing, a smoke run
    python benchmarks/bench_cad.py --n-cases 40 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {
    "sensitivity_at_2fp": 0.90,
    "cpm": 0.85,
    "dice": 0.80,
    "volume_error_median": 0.15,
    "diameter_error_median_mm": 1.0,
    "total_s": 60.0,
    "peak_rss_gb": 4.0,
}


def _best_hit(cands: list[Any], centre: np.ndarray, radius: float) -> Any | None:
    best = None
    for c in cands:
        near = np.linalg.norm(np.asarray(c.center_lps) - centre) <= radius
        if near and (best is None or c.score > best.score):
            best = c
    return best


def run_case(seed: int, quick: bool) -> dict[str, Any]:
    """Detection and segmentation of one phantom; returns light-weight results."""
    from medsnowball.detection import detect_candidates
    from medsnowball.detection.fit_scorer import phantom_case_config
    from medsnowball.evaluation import EvalCase, evaluate_cases
    from medsnowball.lung import segment_lungs
    from medsnowball.measure import measure_nodule
    from medsnowball.segmentation import segment_nodule
    from medsnowball.synth import generate_phantom

    cfg = phantom_case_config(seed, quick=quick)
    ph = generate_phantom(cfg)
    vol = ph.volume
    t0 = time.perf_counter()
    lungs = segment_lungs(vol)
    t1 = time.perf_counter()
    cands = detect_candidates(vol, lungs)
    t2 = time.perf_counter()
    nodules = []
    labels = np.zeros(vol.shape, np.uint16)
    for n in ph.truth.nodules:
        if n.diameter_mm < 5.0:
            continue
        c = _best_hit(cands, np.asarray(n.center_lps), max(0.5 * n.diameter_mm, 1.5))
        if c is None:
            continue
        seg = segment_nodule(vol, c, lungs)
        nid = len(nodules) + 1
        nodules.append(measure_nodule(vol, seg, lungs, nodule_id=nid, score=c.score))
        patch = labels[seg.slices]
        patch[seg.mask & (patch == 0)] = nid
    seg_rows = []
    if nodules:
        rep = evaluate_cases(
            [
                EvalCase(
                    case_id=str(seed),
                    predictions=cands,
                    truth=ph.truth.nodules,
                    nodules=nodules,
                    pred_labels=labels,
                    truth_labels=ph.nodule_labels,
                    spacing_zyx=vol.spacing_zyx,
                )
            ]
        )
        seg_rows = [r.__dict__ for r in rep.nodules if r.dice is not None]
    return {
        "seed": seed,
        "spacing_zyx": list(vol.spacing_zyx),
        "shape_zyx": list(vol.shape),
        "noise_hu": cfg.noise_hu,
        "lungs_s": t1 - t0,
        "candidates_s": t2 - t1,
        "predictions": [{"center_lps": list(c.center_lps), "score": c.score} for c in cands],
        "truth": [
            {
                "id": n.id,
                "center_lps": list(n.center_lps),
                "diameter_mm": n.diameter_mm,
                "type": n.type,
                "location": n.location,
            }
            for n in ph.truth.nodules
        ],
        "seg_rows": seg_rows,
    }


def _seg_table(rows: list[dict[str, Any]]) -> list[str]:
    def summary(sel: list[dict[str, Any]]) -> str:
        d = np.array([r["dice"] for r in sel])
        v = np.array([abs(r["volume_error"]) for r in sel if r["volume_error"] is not None])
        e = np.array(
            [abs(r["diameter_error_mm"]) for r in sel if r["diameter_error_mm"] is not None]
        )
        med = lambda a: f"{np.median(a):.3f}" if a.size else "-"  # noqa: E731
        return f"{len(sel):>5}{np.mean(d):>9.3f}{np.median(d):>9.3f}{med(v):>10}{med(e):>10}"

    lines = [f"{'group':<24}{'n':>5}{'Dice':>9}{'Dice_md':>9}{'|dV|md':>10}{'|dD|md mm':>10}"]
    lines.append(f"{'all >= 5 mm':<24}" + summary(rows))
    for key in ("type", "location", "size_band"):
        for v in sorted({r[key] for r in rows if r[key] is not None}):
            sel = [r for r in rows if r[key] == v]
            lines.append(f"{key + ': ' + str(v):<24}" + summary(sel))
    return lines


TIMING_SCRIPT = r"""
import json, os, sys, time
t_import = time.perf_counter()
from medsnowball.io import load_ct
from medsnowball.lung import segment_lungs
from medsnowball.detection import detect_candidates
from medsnowball.segmentation import segment_nodule
from medsnowball.measure import measure_nodule
t = {}
t0 = time.perf_counter(); vol = load_ct(sys.argv[1]); t["load"] = time.perf_counter() - t0
t0 = time.perf_counter(); lungs = segment_lungs(vol); t["lungs"] = time.perf_counter() - t0
t0 = time.perf_counter(); cands = detect_candidates(vol, lungs, max_candidates=100)
t["candidates"] = time.perf_counter() - t0
sel = [c for c in cands if c.score >= 0.5][:20]
t0 = time.perf_counter(); segs = [segment_nodule(vol, c, lungs) for c in sel]
t["segmentation"] = time.perf_counter() - t0
t0 = time.perf_counter()
nods = [measure_nodule(vol, s, lungs, nodule_id=i + 1, score=c.score)
        for i, (s, c) in enumerate(zip(segs, sel))]
t["measurement"] = time.perf_counter() - t0
t["total"] = sum(t.values())
t["n_nodules"] = len(nods)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss of the forking parent over exec.
with open("/proc/self/status") as fh:
    hwm_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
t["peak_rss_gb"] = hwm_kb / 1024 ** 2
print(json.dumps(t))
"""


def run_timing(seed: int, quick: bool) -> dict[str, Any]:
    """Per-stage times and peak RSS of one 512 x 512 x 300 case in a fresh 2-thread process."""
    from medsnowball.detection.fit_scorer import phantom_case_config
    from medsnowball.io import write_image
    from medsnowball.synth import PhantomConfig, generate_phantom

    base = phantom_case_config(seed)
    shape = (100, 256, 256) if quick else (300, 512, 512)
    spacing = (2.0, 1.4, 1.4) if quick else (1.0, 0.7, 0.7)
    cfg = PhantomConfig(
        shape_zyx=shape,
        spacing_zyx=spacing,
        seed=seed,
        nodules=base.nodules,
        noise_hu=20.0,
        dtype="int16",
    )
    ph = generate_phantom(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.nii.gz"
        write_image(ph.volume, path)
        del ph
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "2"
        out = subprocess.run(
            [sys.executable, "-c", TIMING_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["shape_zyx"] = list(shape)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-cases", type=int, default=20)
    ap.add_argument("--seed-base", type=int, default=30000)
    ap.add_argument("--quick", action="store_true", help="4 small phantoms (smoke run)")
    ap.add_argument("--no-timing", action="store_true", help="skip the 512x512x300 timing run")
    ap.add_argument("--json", type=Path, default=None, help="write all figures to this file")
    args = ap.parse_args(argv)

    from medsnowball.evaluation import EvalCase, evaluate_cases

    n_cases = 4 if args.quick and args.n_cases == 20 else args.n_cases
    cases = []
    t_start = time.perf_counter()
    for i in range(n_cases):
        seed = args.seed_base + i
        r = run_case(seed, args.quick)
        cases.append(r)
        print(
            f"case {seed}: {r['shape_zyx']} spacing {np.round(r['spacing_zyx'], 3).tolist()} "
            f"lungs {r['lungs_s']:.1f} s, candidates {r['candidates_s']:.1f} s, "
            f"{len(r['predictions'])} candidates",
            flush=True,
        )
    report = evaluate_cases(
        [
            EvalCase(case_id=str(c["seed"]), predictions=c["predictions"], truth=c["truth"])
            for c in cases
        ]
    )
    print()
    print(f"== Detection ({n_cases} phantoms, nodules >= 4 mm, LUNA16 matching) ==")
    print(report.format_table())
    fr = report.froc
    print("FROC sensitivities at", list(fr.fp_rates), "FP/scan:", np.round(fr.sensitivities, 3))
    seg_rows = [row for c in cases for row in c["seg_rows"]]
    print()
    print("== Segmentation and measurement (nodules >= 5 mm, best hit per nodule) ==")
    for line in _seg_table(seg_rows) if seg_rows else ["(no segmented nodules)"]:
        print(line)
    timing = None
    if not args.no_timing:
        timing = run_timing(args.seed_base + 999, args.quick)
        print()
        print(f"== Per-stage times, {timing['shape_zyx']} CT, 2 threads ==")
        for k in ("load", "lungs", "candidates", "segmentation", "measurement", "total"):
            print(f"{k:<14}{timing[k]:>8.1f} s")
        print(f"{'nodules':<14}{timing['n_nodules']:>8d}")
        print(f"{'peak RSS':<14}{timing['peak_rss_gb']:>8.2f} GB")
    dice = np.array([r["dice"] for r in seg_rows]) if seg_rows else np.zeros(0)
    vol_err = [abs(r["volume_error"]) for r in seg_rows if r["volume_error"] is not None]
    d_err = [abs(r["diameter_error_mm"]) for r in seg_rows if r["diameter_error_mm"] is not None]
    figures = {
        "sensitivity_at_2fp": report.overall.sensitivity,
        "cpm": fr.cpm,
        "dice": float(np.mean(dice)) if dice.size else None,
        "volume_error_median": float(np.median(vol_err)) if vol_err else None,
        "diameter_error_median_mm": float(np.median(d_err)) if d_err else None,
    }
    if timing is not None:
        figures["total_s"] = timing["total"]
        figures["peak_rss_gb"] = timing["peak_rss_gb"]
    print()
    print("== Targets (issue 3) ==")
    for k, v in figures.items():
        goal = TARGETS[k]
        lower_is_better = k in ("volume_error_median", "diameter_error_median_mm", "total_s",
                                "peak_rss_gb")  # fmt: skip
        ok = v is not None and (v <= goal if lower_is_better else v >= goal)
        sign = "<=" if lower_is_better else ">="
        shown = "-" if v is None else f"{v:.3f}"
        print(f"{k:<26}{shown:>8}  target {sign} {goal:<6}  {'met' if ok else 'NOT met'}")
    print(f"\nbenchmark wall time {time.perf_counter() - t_start:.0f} s, "
          f"peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")  # fmt: skip
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "figures": figures,
                    "detection": report.to_dict(),
                    "timing": timing,
                    "segmentation_rows": seg_rows,
                    "cases": [
                        {k: v for k, v in c.items() if k not in ("predictions", "seg_rows")}
                        for c in cases
                    ],
                },
                indent=1,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
