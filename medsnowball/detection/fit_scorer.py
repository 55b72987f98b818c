"""Fit the packaged candidate scorer on synthetic phantoms (offline tool).

Usage::

    python -m medsnowball.detection.fit_scorer --cache /tmp/msb-fit --jobs 2 \\
        --out medsnowball/detection/scorer_classical.json

Seeds (documented in docs/cad.md; keep them disjoint from tests and benchmarks):

* ``TRAIN_SEEDS`` (7000-7095, and 7200-7295 enriched with hard nodules: 14 nodules of
  3-15 mm, 40 % solid / 30 % part-solid / 30 % ground glass, 30 % parenchymal / 35 %
  juxtapleural / 35 % juxtavascular): the model is fitted on every blob point of these;
* ``CALIBRATION_SEEDS`` (7100-7115): Platt recalibration of the boosted model and the
  reported calibration table;
* tests use seeds below 1000; 20000-20019 tuned the pipelines' operating threshold;
  ``benchmarks/bench_cad.py`` reports on seeds 30000 and up (never used for tuning).

Each phantom is a full-size chest CT drawn by :func:`phantom_case_config`: 512 x 512,
in-plane 0.6-0.8 mm, slice spacing 0.625-2.5 mm, about 300 mm of z, ten LUNA16-sized
nodules of every type and location, varying noise, vessel density and contrast. A blob
point is a positive when its refined centre lies within the radius of a reference nodule
(LUNA16's hit rule).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.detection.boosting import calibration_table, fit_gbm, fit_logistic, fit_platt
from medsnowball.detection.detect import compute_candidate_features
from medsnowball.detection.features import FEATURE_NAMES
from medsnowball.detection.scorer import CandidateScorer
from medsnowball.lung import segment_lungs
from medsnowball.validation.registry import refuse_heldout

log = logging.getLogger(__name__)

#: Training phantoms with more of the hard nodules (ground glass, part-solid, attached, small).
ENRICHED_SEEDS: tuple[int, ...] = tuple(range(7200, 7296))
TRAIN_SEEDS: tuple[int, ...] = tuple(range(7000, 7096)) + ENRICHED_SEEDS
CALIBRATION_SEEDS: tuple[int, ...] = tuple(range(7100, 7116))
#: Nodules per phantom.
NODULES_PER_CASE = 10
SLICE_SPACINGS_MM = (0.625, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5)


def phantom_case_config(
    seed: int, *, quick: bool = False, n_nodules: int = NODULES_PER_CASE, enriched: bool = False
) -> Any:
    """The phantom of one training / benchmark case.

    Args:
        seed: Case seed (drives every random choice).
        quick: A smaller, faster phantom (256 x 256 at twice the in-plane spacing, at most
            160 slices) for smoke runs.
        n_nodules: Nodules to insert.
        enriched: More hard nodules (see the module docstring); training only.

    Returns:
        A :class:`medsnowball.synth.PhantomConfig`.
    """
    from medsnowball.synth import PhantomConfig, random_nodule_specs

    rng = np.random.default_rng([int(seed), 20240611])
    dz = float(rng.choice(SLICE_SPACINGS_MM))
    dxy = float(rng.uniform(0.6, 0.8))
    extent = float(rng.uniform(280.0, 340.0))
    n_xy = 512
    if quick:
        dxy *= 2.0
        n_xy = 256
        dz = max(dz, 1.25)
    nz = round(extent / dz)
    if quick:
        nz = min(nz, 160)
    if enriched:
        specs = random_nodule_specs(
            rng,
            n_nodules + 4,
            min_mm=3.0,
            max_mm=15.0,
            type_weights=(0.4, 0.3, 0.3),
            location_weights=(0.3, 0.35, 0.35),
        )
    else:
        specs = random_nodule_specs(rng, n_nodules, min_mm=3.0, max_mm=30.0)
    return PhantomConfig(
        shape_zyx=(nz, n_xy, n_xy),
        spacing_zyx=(dz, dxy, dxy),
        seed=int(seed),
        nodules=specs,
        noise_hu=float(rng.uniform(10.0, 35.0)),
        vessel_density=float(rng.uniform(0.8, 1.3)),
        contrast=bool(rng.uniform() < 0.3),
        fov_padding=bool(rng.uniform() < 0.5),
        dtype="int16",
    )


def label_points(
    centres_lps: NDArray[np.floating], nodules: Iterable[Any]
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """LUNA16 hit rule: a point is positive when within a reference nodule's radius.

    Args:
        centres_lps: Point centres ``(n, 3)`` LPS mm.
        nodules: Truth records with ``center_lps``, ``diameter_mm`` and ``id``.

    Returns:
        ``(labels, nodule_ids)``: 0/1 labels ``(n,)`` and the matched nodule id (0 = none).
    """
    c = np.asarray(centres_lps, dtype=np.float64).reshape(-1, 3)
    labels = np.zeros(c.shape[0])
    ids = np.zeros(c.shape[0], dtype=np.intp)
    best = np.full(c.shape[0], np.inf)
    for n in nodules:
        d = np.linalg.norm(c - np.asarray(n.center_lps), axis=1)
        r = max(0.5 * float(n.diameter_mm), 1.5)
        hit = (d <= r) & (d < best)
        labels[hit] = 1.0
        ids[hit] = int(n.id)
        best[hit] = d[hit]
    return labels, ids


def collect_case(seed: int, *, quick: bool = False, cache: Path | None = None) -> dict[str, Any]:
    """Generate one phantom, detect blob points, return features and labels.

    Args:
        seed: Case seed.
        quick: Smaller phantom (see :func:`phantom_case_config`).
        cache: Folder for ``case-<seed>.npz`` results (reused when present).

    Returns:
        Dict with ``x`` ``(n, f)``, ``y`` ``(n,)``, ``nodule_id`` ``(n,)``, ``centres``
        ``(n, 3)`` LPS, ``diameters`` ``(n,)`` and ``truth`` (list of nodule dicts).
    """
    from medsnowball.synth import generate_phantom

    refuse_heldout(seeds=(seed,))
    path = None
    if cache is not None:
        path = Path(cache) / f"case-{seed}{'-quick' if quick else ''}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            data["truth"] = json.loads(str(data.pop("truth_json")))
            return data
    ph = generate_phantom(phantom_case_config(seed, quick=quick, enriched=seed in ENRICHED_SEEDS))
    lungs = segment_lungs(ph.volume)
    feats, centres, diameters, iso = compute_candidate_features(ph.volume, lungs)
    x = np.array([[f[n] for n in FEATURE_NAMES] for f in feats]).reshape(-1, len(FEATURE_NAMES))
    world = iso.geometry.index_to_world(centres) if iso is not None else np.zeros((0, 3))
    y, ids = label_points(world, ph.truth.nodules)
    truth = [
        {
            "id": n.id,
            "center_lps": list(n.center_lps),
            "diameter_mm": n.diameter_mm,
            "type": n.type,
            "location": n.location,
        }
        for n in ph.truth.nodules
    ]
    data = {
        "x": x,
        "y": y,
        "nodule_id": ids,
        "centres": world,
        "diameters": diameters,
        "truth": truth,
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            x=x,
            y=y,
            nodule_id=ids,
            centres=world,
            diameters=diameters,
            truth_json=json.dumps(truth),
        )
    return data


def _stack(cases: list[dict[str, Any]]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.concatenate([c["x"] for c in cases])
    y = np.concatenate([c["y"] for c in cases])
    return x, y


def _log_loss(p: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit(
    train: list[dict[str, Any]], calib: list[dict[str, Any]], kind: str = "gbm"
) -> tuple[CandidateScorer, dict[str, Any]]:
    """Fit a scorer on training cases and recalibrate / report on calibration cases.

    Args:
        train: Cases from :func:`collect_case`.
        calib: Held-out cases.
        kind: ``"gbm"`` or ``"logistic"``.

    Returns:
        ``(scorer, report)``; the report holds log-loss, Brier score and the calibration table.
    """
    x, y = _stack(train)
    xc, yc = _stack(calib)
    names = list(FEATURE_NAMES)
    if kind == "logistic":
        model = fit_logistic(x, y, names, l2=1.0)
    else:
        model = fit_gbm(x, y, names, n_trees=400, depth=5, learning_rate=0.05, min_leaf=8.0)
        raw = CandidateScorer(model).log_odds(xc)
        model["platt"] = list(fit_platt(raw, yc))
    scorer = CandidateScorer(model)
    pc = scorer.predict(xc)
    report = {
        "kind": kind,
        "n_train_points": int(y.size),
        "n_train_positive": int(y.sum()),
        "n_calibration_points": int(yc.size),
        "calibration_log_loss": _log_loss(pc, yc),
        "calibration_brier": float(np.mean((pc - yc) ** 2)),
        "calibration_table": calibration_table(pc, yc),
    }
    return scorer, report


def _collect_one(job: tuple[int, bool, Path | None]) -> dict[str, Any]:
    seed, quick, cache = job
    data = collect_case(seed, quick=quick, cache=cache)
    log.info("case %d: %d points, %d positive", seed, data["y"].size, int(data["y"].sum()))
    return data


def _collect_all(
    seeds: list[int], quick: bool, cache: Path | None, jobs: int
) -> list[dict[str, Any]]:
    refuse_heldout(seeds=seeds)
    work = [(s, quick, cache) for s in seeds]
    if jobs <= 1:
        return [_collect_one(w) for w in work]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return list(pool.imap(_collect_one, work))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="model JSON to write")
    ap.add_argument("--cache", type=Path, default=None, help="folder for per-case features")
    ap.add_argument("--kind", choices=("gbm", "logistic"), default="gbm")
    ap.add_argument("--n-train", type=int, default=len(TRAIN_SEEDS))
    ap.add_argument("--n-calib", type=int, default=len(CALIBRATION_SEEDS))
    ap.add_argument("--quick", action="store_true", help="small phantoms (smoke run)")
    ap.add_argument("--jobs", type=int, default=1, help="phantoms processed in parallel")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train_seeds = list(TRAIN_SEEDS[: args.n_train])
    calib_seeds = list(CALIBRATION_SEEDS[: args.n_calib])
    cases = _collect_all(train_seeds + calib_seeds, args.quick, args.cache, args.jobs)
    train = cases[: len(train_seeds)]
    calib = cases[len(train_seeds) :]
    scorer, report = fit(train, calib, args.kind)
    scorer.model["training"] = {
        "train_seeds": list(TRAIN_SEEDS[: args.n_train]),
        "calibration_seeds": list(CALIBRATION_SEEDS[: args.n_calib]),
        "phantoms": "medsnowball.detection.fit_scorer.phantom_case_config"
        + (" (quick)" if args.quick else ""),
        "calibration_log_loss": round(report["calibration_log_loss"], 5),
        "calibration_brier": round(report["calibration_brier"], 5),
        "calibration_table": [
            {"bin_low": lo, "mean_score": round(p, 4), "observed": round(o, 4), "n": n}
            for lo, p, o, n in report["calibration_table"]
        ],
    }
    scorer.save(args.out)
    log.info("%s", json.dumps({k: v for k, v in report.items()}, indent=1))
    log.info("wrote %s", args.out)
    return 0 if math.isfinite(report["calibration_log_loss"]) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
