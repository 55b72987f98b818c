"""Benchmark: discover + load a 300-slice 512x512 DICOM CT series, medsnowball vs SimpleITK.

Usage::

    python benchmarks/bench_io.py [--workdir DIR] [--runs 5] [--slices 300] [--workers N]

The series is generated once (``write_dicom_series``, signed 16-bit, explicit VR little
endian, shuffled file names without extension) and cached in ``--workdir`` (default: a
folder in the system temp dir). Each run is a cold start of both loaders on the same
folder, interleaved (ours, SimpleITK, ours, ...), so OS file caching favours neither:

* ours: ``medsnowball.io.load_ct(folder)`` = header-only discovery + series selection +
  parallel decoding into one preallocated int16 array;
* SimpleITK: ``ImageSeriesReader`` with its own GDCM discovery
  (``GetGDCMSeriesIDs`` + ``GetGDCMSeriesFileNames``) then ``Execute`` and
  ``GetArrayViewFromImage``.

Peak memory is measured in a fresh subprocess per loader: the rise of the process's
peak resident set size (``VmHWM``) during the load, divided by the volume's size.
Targets: time ratio ours/SimpleITK <= 1, peak/volume <= 2.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SITK_NAME = "SimpleITK"


def _make_series(folder: Path, n_slices: int) -> None:
    """Write a synthetic 512x512 series with body-like content (cached by a marker file)."""
    from medsnowball.core import AcquisitionInfo, CTVolume, ImageGeometry
    from medsnowball.io import write_dicom_series

    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(n_slices):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    yy, xx = np.mgrid[:512, :512]
    body = ((yy - 256) / 200.0) ** 2 + ((xx - 256) / 240.0) ** 2 <= 1.0
    lungs = (((yy - 240) / 120.0) ** 2 + ((np.abs(xx - 256) - 110) / 70.0) ** 2) <= 1.0
    rng = np.random.default_rng(0)
    arr = np.full((n_slices, 512, 512), -1000, dtype=np.int16)
    base = np.where(body, 40, -1000) + np.where(lungs, -860, 0)
    for k in range(n_slices):
        arr[k] = base + rng.normal(0, 15, (512, 512)).astype(np.int16)
    vol = CTVolume(
        arr,
        ImageGeometry(arr.shape, (1.0, 0.7, 0.7), (-179.0, -179.0, -300.0)),
        acquisition=AcquisitionInfo(manufacturer="SYNTH", kernel="B50f", kvp=120.0),
    )
    write_dicom_series(vol, folder, file_names="shuffled", pixel_representation=1, seed=1)
    marker.write_text(str(n_slices))


def _load_ours(folder: str, workers: int | None) -> tuple[tuple[int, ...], int]:
    from medsnowball.io import load_ct
    from medsnowball.io.dicom_headers import clear_header_cache

    clear_header_cache()  # every run starts cold, like a new process
    vol = load_ct(folder, max_workers=workers)
    return vol.shape, int(vol.array.nbytes)


def _load_sitk(folder: str) -> tuple[tuple[int, ...], int]:
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(folder)
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, ids[0]))
    image = reader.Execute()
    arr = sitk.GetArrayViewFromImage(image)
    return tuple(arr.shape), int(arr.nbytes)


def _maxrss_bytes() -> int:
    """Peak resident set size of this process in bytes.

    Linux: ``VmHWM`` from /proc (``ru_maxrss`` would inherit the parent's peak across
    fork + exec); elsewhere ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) * (1 if sys.platform == "darwin" else 1024)


def _probe(which: str, folder: str, workers: int | None) -> None:
    """Subprocess entry: print JSON with the peak RSS rise of one load."""
    import SimpleITK  # noqa: F401  (import cost outside the measurement)

    import medsnowball.io  # noqa: F401

    before = _maxrss_bytes()
    shape, nbytes = _load_ours(folder, workers) if which == "ours" else _load_sitk(folder)
    print(json.dumps({"peak": _maxrss_bytes() - before, "nbytes": nbytes, "shape": shape}))


def _memory(which: str, workdir: Path, slices: int, workers: int | None) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--probe", which, "--workdir", str(workdir)]
    cmd += ["--slices", str(slices)]
    if workers:
        cmd += ["--workers", str(workers)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msb_bench_io")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--probe", choices=["ours", "sitk"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    folder = args.workdir / f"series_{args.slices}"
    if args.probe:
        _probe(args.probe, str(folder), args.workers)
        return 0

    t0 = time.perf_counter()
    _make_series(folder, args.slices)
    print(
        f"series: {folder} ({args.slices} x 512 x 512), ready in {time.perf_counter() - t0:.1f} s"
    )

    _load_ours(str(folder), args.workers)  # warm-up: imports, page cache
    _load_sitk(str(folder))
    times: dict[str, list[float]] = {"ours": [], "sitk": []}
    for _ in range(max(5, args.runs)):
        for which in ("ours", "sitk"):
            t = time.perf_counter()
            if which == "ours":
                shape, nbytes = _load_ours(str(folder), args.workers)
            else:
                shape_s, _ = _load_sitk(str(folder))
            times[which].append(time.perf_counter() - t)
    if tuple(shape) != tuple(shape_s):
        raise SystemExit(f"shape mismatch: ours {shape}, SimpleITK {shape_s}")
    mem = {w: _memory(w, args.workdir, args.slices, args.workers) for w in ("ours", "sitk")}

    med = {w: statistics.median(v) for w, v in times.items()}
    vol_mb = nbytes / 1e6
    print(f"volume: {shape} int16 = {vol_mb:.0f} MB; runs: {len(times['ours'])} each, interleaved")
    print()
    print(f"{'loader':<24}{'median s':>10}{'min s':>9}{'max s':>9}{'peak MB':>10}{'peak/vol':>10}")
    labels = {"ours": "medsnowball load_ct", "sitk": "SimpleITK series reader"}
    for w in ("ours", "sitk"):
        peak_mb = mem[w]["peak"] / 1e6
        print(
            f"{labels[w]:<24}{med[w]:>10.3f}{min(times[w]):>9.3f}{max(times[w]):>9.3f}"
            f"{peak_mb:>10.0f}{peak_mb / vol_mb:>10.2f}"
        )
    ratio = med["ours"] / med["sitk"]
    print()
    print(f"time ratio ours/SimpleITK: {ratio:.2f}  (target <= 1.00)")
    print(f"peak memory ours / volume: {mem['ours']['peak'] / nbytes:.2f}  (target <= 2.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
