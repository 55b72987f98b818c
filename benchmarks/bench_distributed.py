"""Benchmark: a batch on a local Dask cluster vs the in-process local executor.

Runs N small phantom cases (48x96x96, one 8 mm nodule each) through ``run_batch``:

* ``local x1``: :class:`LocalExecutor` with 1 worker (in this process, no IPC);
* ``dask xW``: :class:`DaskExecutor`, a LocalCluster of W worker processes (1 case each).

Both are measured warm (a first batch is run and discarded: module imports, caches), the
median of ``--repeats`` batches is reported. Separately it measures the scheduler's own
cost per case: tasks that do nothing (``bool`` of the CaseTask, so the CaseTask is still
pickled, shipped, and the result returned) through the same cluster, against direct calls.

Usage::

    python benchmarks/bench_distributed.py [--cases 8] [--workers 2] [--repeats 3]

The figures depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def write_cases(root: Path, n: int, shape_zyx: tuple[int, int, int] = (48, 96, 96)) -> list[Path]:
    """Write ``n`` phantom CTs ``p<seed>.nii.gz`` into ``root`` (truth files dropped).

    The field of view stays that of a 48x96x96 grid at 2.5/2/2 mm; a larger shape only
    makes the voxels smaller (more work per case).
    """
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom, write_phantom

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(1, n + 1):
        phantom = generate_phantom(
            PhantomConfig(
                shape_zyx=shape_zyx,
                spacing_zyx=(120.0 / shape_zyx[0], 192.0 / shape_zyx[1], 192.0 / shape_zyx[2]),
                seed=seed,
                nodules=(NoduleSpec(8.0, "solid", "parenchymal"),),
            )
        )
        written = write_phantom(phantom, root / f"tmp{seed}", fmt="nifti")
        target = root / f"p{seed:02d}.nii.gz"
        shutil.move(written["image"], target)
        shutil.rmtree(root / f"tmp{seed}")
        paths.append(target)
    return paths


def choose_pipeline(probe: Path) -> Any:
    """The default pipeline when it runs here, else its model-free steps."""
    from medsnowball.pipeline import DEFAULT_PIPELINE, Pipeline

    default = Pipeline.from_yaml(DEFAULT_PIPELINE)
    try:
        default.run(probe)
    except Exception as exc:  # noqa: BLE001 - fall back to what works
        print(f"note: the default pipeline fails here ({exc}); using load/preprocess/lungs/report")
        data = default.to_dict()
        data["name"] = "bench_minimal"
        keep = ("load", "preprocess", "lungs", "report")
        data["steps"] = [s for s in data["steps"] if s["step"] in keep]
        return Pipeline.from_dict(data, origin="bench_minimal")
    return default


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by this process and the processes ``pids``."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(), *(psutil.Process(p) for p in pids)]:
        t = proc.cpu_times()
        total += t.user + t.system
    return total


def timed_batch(
    inputs: list[Path], out: Path, pipeline: Any, executor: Any, pids: list[int] | None = None
) -> tuple[float, float]:
    """(wall s, CPU s of this process and ``pids``) of one ``run_batch``; all cases must pass."""
    from medsnowball.pipeline import run_batch

    shutil.rmtree(out, ignore_errors=True)
    cpu0 = cpu_seconds(pids or [])
    t0 = time.perf_counter()
    summary = run_batch(inputs, out, pipeline=pipeline, formats="json,csv", executor=executor)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds(pids or []) - cpu0
    if summary.n_failed:
        raise SystemExit(f"benchmark batch failed: {[o.error for o in summary.outcomes]}")
    return seconds, cpu


def scheduler_overhead(exe: Any, tasks: list[Any], repeats: int) -> tuple[float, float]:
    """(seconds per task through the cluster, seconds per direct call) for a no-op task."""
    lost = lambda task, reason: reason  # noqa: E731
    through, direct = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        results = list(exe.run(bool, tasks, lost))
        through.append((time.perf_counter() - t0) / len(tasks))
        if results != [True] * len(tasks):
            raise SystemExit(f"no-op tasks failed: {results[:3]}")
        t0 = time.perf_counter()
        for task in tasks:
            bool(task)
        direct.append((time.perf_counter() - t0) / len(tasks))
    return statistics.median(through), statistics.median(direct)


def case_with_peak_rss(task: Any) -> tuple[Any, int, float]:
    """Dask task: run one case; return (outcome, the worker's peak RSS bytes, CPU s)."""
    import resource

    from medsnowball.pipeline import run_case_task

    cpu0 = time.process_time()
    outcome = run_case_task(task)
    cpu = time.process_time() - cpu0
    return outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, cpu


def full_size_case(tmp: Path, pipeline_name: str | None, formats: str) -> None:
    """Print peak memory and CPU time of one 300x512x512 case in a fresh 1-thread worker."""
    from medsnowball.io import find_cases
    from medsnowball.pipeline import CaseTask, RunOptions
    from medsnowball.pipeline.dask_executor import DaskExecutor
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom, write_phantom

    phantom = generate_phantom(
        PhantomConfig(
            shape_zyx=(300, 512, 512),
            spacing_zyx=(1.0, 0.7, 0.7),
            seed=11,
            nodules=(
                NoduleSpec(8.0, "solid", "parenchymal"),
                NoduleSpec(5.0, "solid", "juxtapleural"),
            ),
        )
    )
    written = write_phantom(phantom, tmp / "full", fmt="nifti")
    del phantom
    if pipeline_name:
        from medsnowball.pipeline import Pipeline

        pipeline = Pipeline.from_yaml(pipeline_name)
    else:
        pipeline = choose_pipeline(write_cases(tmp / "probe", 1)[0])
    case = find_cases([written["image"]]).cases[0]
    out = tmp / "full_out"
    task = CaseTask(pipeline, case, str(out), RunOptions(formats=tuple(formats.split(","))), 1)
    with DaskExecutor(workers=1, threads=1) as exe:
        [(outcome, peak, cpu)] = list(exe.run(case_with_peak_rss, [task], lambda t, r: r))
    print(
        f"full-size case 300x512x512 ({pipeline.name}, formats {formats}): {outcome.status} "
        f"{outcome.error}; wall {outcome.seconds:.1f} s, CPU {cpu:.1f} s (1 thread), "
        f"worker peak RSS {peak / 2**30:.2f} GiB"
    )


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noop-tasks", type=int, default=200)
    parser.add_argument(
        "--shape", default="48x96x96", help="z x y x x voxels of each case (same field of view)"
    )
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="only measure one 300x512x512 case: peak worker memory and CPU time",
    )
    parser.add_argument("--pipeline", default=None, help="pipeline for --full-size")
    parser.add_argument("--formats", default="json,csv,nifti", help="outputs for --full-size")
    args = parser.parse_args()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("medsnowball").addHandler(handler)
    logging.getLogger("medsnowball").setLevel(logging.WARNING)

    from medsnowball.io import find_cases
    from medsnowball.pipeline import CaseTask, LocalExecutor, RunOptions
    from medsnowball.pipeline.dask_executor import DaskExecutor

    if args.full_size:
        with tempfile.TemporaryDirectory(prefix="bench_dist_full_") as tmp_name:
            full_size_case(Path(tmp_name), args.pipeline, args.formats)
        return
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_dist_") as tmp_name:
        tmp = Path(tmp_name)
        shape = tuple(int(v) for v in args.shape.split("x"))
        if len(shape) != 3:
            raise SystemExit(f"--shape: expected ZxYxX, found {args.shape!r}")
        inputs = write_cases(tmp / "in", args.cases, shape)  # type: ignore[arg-type]
        pipeline = choose_pipeline(inputs[0])

        local = LocalExecutor(1)
        timed_batch(inputs[:2], tmp / "warm", pipeline, local)  # warm-up, discarded
        local_runs = [
            timed_batch(inputs, tmp / "local", pipeline, local) for _ in range(args.repeats)
        ]

        t0 = time.perf_counter()
        with DaskExecutor(workers=args.workers) as exe:
            start_s = time.perf_counter() - t0
            timed_batch(inputs[: args.workers], tmp / "warm", pipeline, exe)  # workers import
            pids = sorted(exe.client.run(os.getpid).values())
            dask_runs = [
                timed_batch(inputs, tmp / "dask", pipeline, exe, pids) for _ in range(args.repeats)
            ]
            case = find_cases([inputs[0]]).cases[0]
            task = CaseTask(pipeline, case, str(tmp / "noop"), RunOptions(formats=("json",)))
            per_task, per_call = scheduler_overhead(exe, [task] * args.noop_tasks, args.repeats)
        t0 = time.perf_counter()
        with DaskExecutor(workers=1) as exe1:
            start1_s = time.perf_counter() - t0
            latency, _ = scheduler_overhead(exe1, [task] * (args.noop_tasks // 4), args.repeats)
    load1 = os.getloadavg()

    local_s, dask_s = [r[0] for r in local_runs], [r[0] for r in dask_runs]
    local_med, dask_med = statistics.median(local_s), statistics.median(dask_s)
    local_cpu = statistics.median(r[1] for r in local_runs)
    dask_cpu = statistics.median(r[1] for r in dask_runs)
    n = args.cases
    print()
    print(f"pipeline: {pipeline.name}; {n} cases {args.shape}; {os.cpu_count()} CPUs; ", end="")
    print(f"load average {load0[0]:.1f} before, {load1[0]:.1f} after (shared machine)")
    print(f"median of {args.repeats} warm batches each")
    print()
    print(f"| {'executor':<22} | {'batch s':>8} | {'cases/min':>9} | {'s/case':>7} | CPU s/case |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 11}|{'-' * 9}|{'-' * 12}|")
    rows = (
        ("local x1 (in-process)", local_med, local_cpu),
        (f"dask x{args.workers}", dask_med, dask_cpu),
    )
    for name, sec, cpu in rows:
        print(
            f"| {name:<22} | {sec:8.2f} | {60 * n / sec:9.1f} | {sec / n:7.2f} | {cpu / n:10.2f} |"
        )
    print()
    ratio = local_med / dask_med
    print(f"throughput ratio dask x{args.workers} / local x1: {ratio:.2f} (target >= 1.6)")
    ideal = args.workers * local_cpu / dask_cpu
    print(
        f"CPU-bound estimate for an idle {args.workers}-core machine "
        f"({args.workers} x local CPU per case / Dask CPU per case): {ideal:.2f}"
    )
    all_local, all_dask = [round(s, 2) for s in local_s], [round(s, 2) for s in dask_s]
    print(f"all batches, s: local {all_local}, dask {all_dask}")
    print(f"cluster start: {start_s:.2f} s ({args.workers} workers), {start1_s:.2f} s (1 worker)")
    print(
        f"scheduler overhead per case (no-op task, {args.noop_tasks} tasks): "
        f"{1000 * per_task:.2f} ms amortised on {args.workers} workers, "
        f"{1000 * latency:.2f} ms serial on 1 worker, vs {1e6 * per_call:.2f} us direct call"
    )
    print(
        f"overhead share of a case: {100 * latency / (local_med / n):.2f} % "
        f"(serial round trip / in-process seconds per case)"
    )


if __name__ == "__main__":
    main()
