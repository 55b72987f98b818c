"""Batch throughput: ``medsnowball run`` (1 and 2 workers) vs the pipeline called in-process.

Generates N small synthetic chest CTs (DICOM series with nodules), then times:

* ``direct (script)``: a Python process calling ``find_cases`` + ``Pipeline.run(case,
  out_dir=...)`` per case (the baseline: no CLI, no batch bookkeeping);
* ``cli -j 1``: ``medsnowball run DATA -o OUT`` as a subprocess (interpreter start, imports,
  discovery, per-case status files, summary/LUNA16 CSVs included);
* ``cli -j 2``: the same with two worker processes.

Prints cases/minute, the CLI overhead over the direct run (target <= 10 %) in wall time and
in CPU time (CPU seconds of the process tree: robust when other jobs share the machine),
the 1 -> 2 worker scaling and the median seconds per pipeline step.

Usage::

    python benchmarks/bench_batch.py [--cases 10] [--shape 64 128 128] [--formats json,csv,nifti]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_cases(root: Path, n: int, shape: tuple[int, int, int]) -> Path:
    """Write ``n`` phantom DICOM series (1-2 nodules each) under ``root/data``."""
    from medsnowball.io import write_dicom_series
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

    data = root / "data"
    kinds = [("solid", "parenchymal"), ("solid", "juxtapleural"), ("ground_glass", "parenchymal")]
    for i in range(n):
        nodules = [NoduleSpec(6.0 + (i % 5), *kinds[i % 3])]  # type: ignore[arg-type]
        if i % 2:
            nodules.append(NoduleSpec(9.0, "solid", "parenchymal"))
        ph = generate_phantom(
            PhantomConfig(
                shape_zyx=shape,
                spacing_zyx=(2.0, 1.2, 1.2),
                seed=1000 + i,
                nodules=tuple(nodules),
            )
        )
        write_dicom_series(ph.volume, data / f"case{i:02d}", seed=i)
    return data


DIRECT_SCRIPT = """
import json, sys
from pathlib import Path
from medsnowball.io import find_cases
from medsnowball.pipeline import Pipeline

data, out, formats = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
pipe = Pipeline.from_yaml("lung_nodule_screening")
timings = []
for case in find_cases([data]).cases:
    result = pipe.run(case, out_dir=out / case.case_id, formats=formats, keep_arrays=False)
    timings.append(result.timings_s)
(out / "timings.json").write_text(json.dumps(timings))
"""


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, CPU seconds of it and its child processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run_direct(data: Path, out: Path, formats: str) -> tuple[float, float]:
    """Baseline: a Python process calling ``Pipeline.run`` per case (no CLI, no batch
    bookkeeping). Interpreter start and imports are included, as for the CLI."""
    out.mkdir(parents=True, exist_ok=True)
    return _timed([sys.executable, "-c", DIRECT_SCRIPT, str(data), str(out), formats])


def run_cli(data: Path, out: Path, formats: str, workers: int) -> tuple[float, float]:
    """``medsnowball run`` as a subprocess."""
    exe = shutil.which("medsnowball")
    cmd = [exe] if exe else [sys.executable, "-m", "medsnowball.cli"]
    cmd += ["run", str(data), "-o", str(out), "--formats", formats, "-j", str(workers), "-q"]
    return _timed(cmd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument(
        "--shape", type=int, nargs=3, default=(64, 128, 128), metavar=("Z", "Y", "X")
    )
    parser.add_argument("--formats", default="json,csv,nifti")
    parser.add_argument("--repeats", type=int, default=1, help="take the best of N runs")
    parser.add_argument("--keep", type=Path, default=None, help="keep data/outputs here")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_batch_"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = make_cases(root, args.cases, tuple(args.shape))
    print(f"generated {args.cases} cases {tuple(args.shape)} in {time.perf_counter() - t0:.1f} s")
    print(f"cpus available: {len(os.sched_getaffinity(0))}, formats: {args.formats}")

    load_before = os.getloadavg()
    modes = {
        "direct (script)": lambda o: run_direct(data, o, args.formats),
        "cli -j 1": lambda o: run_cli(data, o, args.formats, 1),
        "cli -j 2": lambda o: run_cli(data, o, args.formats, 2),
    }
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    timings: list[dict[str, float]] = []
    for rep in range(args.repeats):
        for i, (name, fn) in enumerate(modes.items()):
            out = root / f"out{i}_{rep}"
            shutil.rmtree(out, ignore_errors=True)
            w, c = fn(out)
            wall[name] = min(wall.get(name, float("inf")), w)
            cpu[name] = min(cpu.get(name, float("inf")), c)
            if i == 0 and not timings:
                timings = json.loads((out / "timings.json").read_text())
            print(f"  run {rep + 1}: {name:16s} wall {w:7.1f} s   cpu {c:7.1f} s")
    load_after = os.getloadavg()

    n = args.cases
    base = "direct (script)"
    print()
    print(
        f"{'mode':18s} {'wall s':>7s} {'cases/min':>9s} {'wall vs direct':>14s} "
        f"{'cpu s':>7s} {'cpu vs direct':>13s}"
    )
    for name in modes:
        print(
            f"{name:18s} {wall[name]:7.1f} {n / wall[name] * 60:9.1f} "
            f"{(wall[name] / wall[base] - 1) * 100:+13.1f}% {cpu[name]:7.1f} "
            f"{(cpu[name] / cpu[base] - 1) * 100:+12.1f}%"
        )
    print()
    over_wall = (wall["cli -j 1"] / wall[base] - 1) * 100
    over_cpu = (cpu["cli -j 1"] / cpu[base] - 1) * 100
    print(
        f"CLI overhead over direct, 1 worker: wall {over_wall:+.1f} %, cpu {over_cpu:+.1f} % "
        "(target <= 10 %)"
    )
    print(
        f"scaling 1 -> 2 workers: {wall['cli -j 1'] / wall['cli -j 2']:.2f}x wall "
        f"(cpu cost ratio {cpu['cli -j 2'] / cpu['cli -j 1']:.2f})"
    )
    print(
        f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on "
        f"{len(os.sched_getaffinity(0))} CPUs (wall figures need an idle machine)"
    )
    print()
    print("median seconds per step (direct run):")
    for step in list(timings[0]) if timings else []:
        values = [t[step] for t in timings if step in t]
        print(f"  {step:12s} {statistics.median(values):7.3f}")
    total = [sum(t.values()) for t in timings]
    print(f"  {'total':12s} {statistics.median(total):7.3f}")
    print(f"\nraw: {json.dumps({'wall': wall, 'cpu': cpu})}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
