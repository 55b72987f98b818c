"""Command line of the phantom generator.

Usage::

    python -m medsnowball.synth make-sample sample_data/
    python -m medsnowball.synth generate OUT_DIR --seed 3 --shape 300 512 512 \\
        --spacing 1.0 0.7 0.7 --nodules 5 --format dicom
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from medsnowball.core.errors import ConfigError
from medsnowball.synth.generator import generate_phantom
from medsnowball.synth.specs import NoduleSpec, PhantomConfig, random_nodule_specs

log = logging.getLogger("medsnowball.synth")

#: The study in ``sample_data/`` (see sample_data/README.md). Changing anything here
#: changes the sample; regenerate it with ``python -m medsnowball.synth make-sample``.
SAMPLE_CONFIG = PhantomConfig(
    shape_zyx=(100, 384, 384),
    spacing_zyx=(2.5, 0.875, 0.875),
    seed=20240601,
    nodules=(
        NoduleSpec(9.0, "solid", "parenchymal", side="right", zone="upper"),
        NoduleSpec(
            14.0, "part_solid", "parenchymal", side="left", zone="middle", solid_diameter_mm=6.0
        ),
        NoduleSpec(7.0, "solid", "juxtapleural", side="right", zone="lower"),
    ),
    noise_hu=15.0,
    blur_mm=0.6,
    dtype="int16",
)


#: JPEG-LS Lossless: exact HU in about a third of the uncompressed size (reading it needs
#: the ``dicom`` extra, pyjpegls).
SAMPLE_TRANSFER_SYNTAX = "1.2.840.10008.1.2.4.80"


def make_sample(out_dir: Path) -> dict[str, Path]:
    """Regenerate the sample study (DICOM series + truth) in ``out_dir``.

    Existing ``IM*.dcm`` files in ``out_dir/dicom`` are removed first so that no stale
    slice survives a change of slice count. ``README.md`` is left alone.

    Args:
        out_dir: Target folder, e.g. ``sample_data/``.

    Returns:
        The written paths (see :func:`medsnowball.synth.write_phantom`).
    """
    from medsnowball.synth.writer import write_phantom

    dicom = out_dir / "dicom"
    if dicom.is_dir():
        for f in dicom.glob("IM*.dcm"):
            f.unlink()
    phantom = generate_phantom(SAMPLE_CONFIG)
    if phantom.truth.skipped:
        raise ConfigError(f"Sample nodules could not be placed: {phantom.truth.skipped}")
    paths = write_phantom(phantom, out_dir, "dicom", transfer_syntax=SAMPLE_TRANSFER_SYNTAX)
    size = sum(f.stat().st_size for f in dicom.iterdir())
    log.info("Wrote %d slices (%.2f MB) to %s", phantom.volume.shape[0], size / 1e6, dicom)
    for n in phantom.truth.nodules:
        log.info(
            "nodule %d: %.1f mm %s %s, %s %s, centre LPS (%.1f, %.1f, %.1f)",
            n.id,
            n.diameter_mm,
            n.type,
            n.location,
            n.side,
            n.zone,
            *n.center_lps,
        )
    return paths


def _generate(args: argparse.Namespace) -> None:
    from medsnowball.synth.writer import write_phantom

    specs: tuple[NoduleSpec, ...] = random_nodule_specs(
        args.seed, args.nodules, min_mm=args.min_mm, max_mm=args.max_mm
    )
    cfg = PhantomConfig(
        shape_zyx=tuple(args.shape),  # type: ignore[arg-type]
        spacing_zyx=tuple(args.spacing),  # type: ignore[arg-type]
        seed=args.seed,
        nodules=specs,
        noise_hu=args.noise,
        contrast=args.contrast,
    )
    phantom = generate_phantom(cfg)
    paths = write_phantom(phantom, args.out_dir, args.format)
    log.info("Generated in %.1f s; wrote %s", phantom.timings_s["total"], paths["image"])
    for msg in phantom.truth.skipped:
        log.warning(msg)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m medsnowball.synth``."""
    parser = argparse.ArgumentParser(
        prog="python -m medsnowball.synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_sample = sub.add_parser("make-sample", help="regenerate the sample_data study")
    p_sample.add_argument("out_dir", type=Path)
    p_gen = sub.add_parser("generate", help="write one random phantom with its truth")
    p_gen.add_argument("out_dir", type=Path)
    p_gen.add_argument("--seed", type=int, default=0)
    p_gen.add_argument(
        "--shape", type=int, nargs=3, default=[128, 128, 128], metavar=("Z", "Y", "X")
    )
    p_gen.add_argument(
        "--spacing", type=float, nargs=3, default=[2.0, 1.5, 1.5], metavar=("DZ", "DY", "DX")
    )
    p_gen.add_argument("--nodules", type=int, default=3, help="number of random nodules")
    p_gen.add_argument("--min-mm", type=float, default=3.0)
    p_gen.add_argument("--max-mm", type=float, default=30.0)
    p_gen.add_argument("--noise", type=float, default=15.0, help="noise standard deviation (HU)")
    p_gen.add_argument("--contrast", action="store_true")
    p_gen.add_argument("--format", choices=["dicom", "nifti", "metaimage"], default="dicom")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "make-sample":
        make_sample(args.out_dir)
    else:
        _generate(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
