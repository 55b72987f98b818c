"""Benchmark of the lung left/right assignment and lung volumes on varied small phantoms.

Runs ``--n-cases`` (default 48) generated chest phantoms, seeds ``--seed-base`` ...
(default 52000: disjoint from the CAD benchmark's 30000+, the training recipes' 10000-10147,
the scorer's fitting seeds 7000-7295, the tuning seeds 20000-20019 and the tests' seeds
< 1000). Each case draws an in-plane pixel of 1.25-2.0 mm and one variant:

* ``normal`` -- the phantom as generated;
* ``unequal`` -- the caudal 30-60 % of one lung (random side) replaced by soft tissue;
* ``lateral_crop`` -- 10-30 % of each lung's lateral extent cropped away (lungs touch the
  left and right image edges);
* ``ap_crop`` -- 15-30 % of the lungs' antero-posterior extent cropped at the front or back;
* ``flipped_x`` -- stored with world x reversed in the direction matrix (array flipped);
* ``bridged`` -- the lungs joined by lung-density tissue (-850 HU) between them at the
  anterior junction over the middle third of their height (one connected component).

Each phantom holds three nodules of random side. Printed: left/right errors (a truth lung
whose segmented voxels are mostly of the other label; a nodule whose
:func:`medsnowball.lung.locate` side differs from the truth), lung volume errors against the
truth lung labels inside the (modified, cropped) image, and the quality flags raised.

Usage::

    python benchmarks/bench_lung_sides.py             # 48 cases, about 3-5 min on 1 core
    python benchmarks/bench_lung_sides.py --n-cases 10
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

import numpy as np
from scipy import ndimage

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.lung import locate, segment_lungs
from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

VARIANTS = ("normal", "unequal", "lateral_crop", "ap_crop", "flipped_x", "bridged")


def _extent(mask: np.ndarray, axis: int) -> tuple[int, int]:
    other = tuple(a for a in range(3) if a != axis)
    idx = np.nonzero(mask.any(axis=other))[0]
    return int(idx[0]), int(idx[-1])


def _crop(vol: CTVolume, labels: np.ndarray, box: tuple[slice, ...]) -> tuple[CTVolume, Any]:
    geo = vol.geometry
    start = [s.start or 0 for s in box]
    arr = np.ascontiguousarray(np.asarray(vol.array)[box])
    sub = ImageGeometry(arr.shape, geo.spacing_zyx, tuple(geo.index_to_world(start)), geo.direction)
    return CTVolume(arr, sub), labels[box]


def make_case(seed: int) -> dict[str, Any]:
    """Phantom, variant and truth of one case."""
    rng = np.random.default_rng(seed)
    pixel = float(rng.choice([1.25, 1.5, 1.75, 2.0]))
    fov = float(rng.uniform(260.0, 320.0))
    n = round(fov / pixel)
    nodules = tuple(
        NoduleSpec(
            float(rng.uniform(6.0, 14.0)), "solid", str(rng.choice(["parenchymal", "juxtapleural"]))
        )  # type: ignore[arg-type]
        for _ in range(3)
    )
    cfg = PhantomConfig(
        shape_zyx=(72, n, n),
        spacing_zyx=(3.0, pixel, pixel),
        seed=seed,
        nodules=nodules,
        body_fraction=float(rng.uniform(0.75, 0.95)),
    )
    ph = generate_phantom(cfg)
    variant = VARIANTS[seed % len(VARIANTS)]
    vol, truth = ph.volume, np.array(ph.lung_labels)
    removed = np.zeros(truth.shape, bool)
    if variant == "unequal":
        label = int(rng.integers(1, 3))
        lung = truth == label
        k0, k1 = _extent(lung, 0)
        up = vol.geometry.direction[2, 2] > 0  # index z runs cranially
        frac = float(rng.uniform(0.3, 0.6))
        cut = round(frac * (k1 - k0))
        gone = lung.copy()
        if up:
            gone[k0 + cut :] = False
        else:
            gone[: k1 - cut] = False
        grown = ndimage.binary_dilation(gone)
        arr = np.array(vol.array, dtype=np.float32)
        arr[grown] = 40.0 + rng.normal(0.0, 15.0, int(grown.sum())).astype(np.float32)
        vol = vol.with_array(arr)
        truth[grown] = 0
        removed = grown
    elif variant == "lateral_crop":
        frac = float(rng.uniform(0.1, 0.3))
        r0, r1 = _extent(truth == 1, 2)
        l0, l1 = _extent(truth == 2, 2)
        box = (
            slice(None),
            slice(None),
            slice(r0 + int(frac * (r1 - r0)), l1 - int(frac * (l1 - l0)) + 1),
        )
        vol, truth = _crop(vol, truth, box)
    elif variant == "ap_crop":
        frac = float(rng.uniform(0.15, 0.3))
        y0, y1 = _extent(truth > 0, 1)
        cut = int(frac * (y1 - y0))
        rows = slice(y0 + cut, None) if rng.random() < 0.5 else slice(None, y1 - cut + 1)
        vol, truth = _crop(vol, truth, (slice(None), rows, slice(None)))
    elif variant == "bridged":
        arr = np.array(vol.array, dtype=np.float32)
        k0, k1 = _extent(truth > 0, 0)
        third = (k1 - k0) // 3
        for k in range(k0 + third, k1 - third):
            both = (truth[k] == 1).any(axis=1) & (truth[k] == 2).any(axis=1)
            for j in np.nonzero(both)[0][:8]:  # the most anterior rows holding both lungs
                xs_r = np.nonzero(truth[k, j] == 1)[0]
                xs_l = np.nonzero(truth[k, j] == 2)[0]
                lo, hi = sorted((int(xs_r.max()), int(xs_l.min())))
                if hi > lo + 1:
                    arr[k, j, lo + 1 : hi] = -850.0
        vol = vol.with_array(arr)
    elif variant == "flipped_x":
        geo = vol.geometry
        origin = geo.index_to_world([0, 0, geo.shape_zyx[2] - 1])
        direction = geo.direction @ np.diag([-1.0, 1.0, 1.0])
        geo2 = ImageGeometry(geo.shape_zyx, geo.spacing_zyx, tuple(origin), direction)
        vol = CTVolume(np.ascontiguousarray(np.asarray(vol.array)[:, :, ::-1]), geo2)
        truth = np.ascontiguousarray(truth[:, :, ::-1])
    return {
        "seed": seed,
        "pixel": pixel,
        "variant": variant,
        "volume": vol,
        "truth": truth,
        "nodules": ph.truth.nodules,
        "removed": removed,
    }


def run_case(seed: int) -> dict[str, Any]:
    """Segment one case and count its errors."""
    case = make_case(seed)
    vol, truth = case["volume"], case["truth"]
    t0 = time.perf_counter()
    seg = segment_lungs(vol)
    seconds = time.perf_counter() - t0
    ml = vol.geometry.voxel_volume_mm3 / 1000.0
    lung_errors = 0
    vol_err: dict[str, float] = {}
    for label, name, got in ((1, "right", seg.right_ml), (2, "left", seg.left_ml)):
        inside = seg.labels[truth == label]
        want = float(np.count_nonzero(truth == label) * ml)
        if want < 20.0:
            continue
        found = inside[inside > 0]
        if found.size == 0 or np.bincount(found, minlength=3).argmax() != label:
            lung_errors += 1
        vol_err[name] = (got - want) / want
    nodule_errors = 0
    n_nodules = 0
    geo = vol.geometry
    for n in case["nodules"]:
        idx = np.rint(geo.world_to_index(n.center_lps)).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(geo.shape_zyx)):
            continue  # cropped away
        if case["variant"] == "unequal" and case["removed"][tuple(idx)]:
            continue  # its lung part was replaced by soft tissue
        n_nodules += 1
        side, _zone = locate(seg, n.center_lps)
        if side is None or side.value != n.side:
            nodule_errors += 1
    return {
        "seed": seed,
        "variant": case["variant"],
        "pixel": case["pixel"],
        "lung_errors": lung_errors,
        "nodule_errors": nodule_errors,
        "n_nodules": n_nodules,
        "vol_err": vol_err,
        "flags": sorted(f.code for f in seg.quality),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-cases", type=int, default=48)
    ap.add_argument("--seed-base", type=int, default=52000)
    args = ap.parse_args()
    results = []
    t0 = time.perf_counter()
    for i in range(args.n_cases):
        r = run_case(args.seed_base + i)
        results.append(r)
        errs = " ".join(f"{k} {v:+.1%}" for k, v in r["vol_err"].items())
        print(
            f"case {r['seed']} {r['variant']:12s} pixel {r['pixel']:.2f} mm: "
            f"lung LR errors {r['lung_errors']}, nodule side errors "
            f"{r['nodule_errors']}/{r['n_nodules']}, volume {errs}, flags {r['flags']}, "
            f"{r['seconds']:.1f} s",
            flush=True,
        )
    n_lungs = sum(len(r["vol_err"]) for r in results)
    lung_errors = sum(r["lung_errors"] for r in results)
    nod = sum(r["n_nodules"] for r in results)
    nod_err = sum(r["nodule_errors"] for r in results)
    errs = np.array([abs(v) for r in results for v in r["vol_err"].values()])
    print()
    print(f"cases: {len(results)} ({time.perf_counter() - t0:.0f} s)")
    print(f"lung left/right errors: {lung_errors} of {n_lungs} lungs")
    print(f"nodule side errors: {nod_err} of {nod} nodules")
    print(
        f"lung volume |error|: median {np.median(errs):.1%}, 90th pct "
        f"{np.percentile(errs, 90):.1%}, max {errs.max():.1%}; > 10 %: "
        f"{int((errs > 0.10).sum())} of {errs.size}"
    )
    for variant in VARIANTS:
        sub = [abs(v) for r in results if r["variant"] == variant for v in r["vol_err"].values()]
        lr = sum(r["lung_errors"] for r in results if r["variant"] == variant)
        if sub:
            print(
                f"  {variant:12s} LR errors {lr}, median |vol err| {np.median(sub):.1%}, "
                f"max {max(sub):.1%}"
            )
    flags = Counter(code for r in results for code in r["flags"])
    print(f"flags raised: {dict(flags)}")


if __name__ == "__main__":
    main()
