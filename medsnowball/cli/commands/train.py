"""``medsnowball train``: train the learned models and build training datalists.

Sub-commands: ``classifier`` (false-positive reduction CNN), ``segmenter`` (nodule U-Net),
``detector`` (MONAI RetinaNet; see its help), ``convert-luna16``, ``convert-lidc`` and
``make-synthetic`` (datalists in MONAI's detection datalist format).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from medsnowball.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    err_console,
    fail,
    setup_logging,
)

__all__ = ["register", "run_training"]

DETECTION_EXTRA_HINT = 'pip install "medsnowball[detection]"'
SYNTHETIC_DIR = "synthetic"
#: Default training patch (z, y, x) of ``train detector --small``.
SMALL_PATCH_ZYX = (32, 64, 64)

train_app = typer.Typer(
    name="train",
    help="Train the learned models (classifier, segmenter, detector) and build datalists.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---- option declarations shared by classifier and segmenter -------------------------------

DatalistArg = Annotated[
    Path | None,
    typer.Argument(
        help="Datalist JSON in MONAI's detection datalist format (see docs/models.md). "
        "Omit it with --synthetic.",
        show_default=False,
    ),
]
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Output folder: best.safetensors, last_state.pt, metrics.csv.",
        show_default=False,
    ),
]
SyntheticOpt = Annotated[
    int | None,
    typer.Option(
        "--synthetic",
        help="Train on N generated phantoms (written once to OUT/synthetic/, reused after).",
        show_default=False,
    ),
]
SyntheticShapeOpt = Annotated[
    str, typer.Option("--synthetic-shape", help="Phantom grid z,y,x (voxels).")
]
SyntheticSpacingOpt = Annotated[
    float, typer.Option("--synthetic-spacing", help="Phantom voxel size (mm, isotropic).")
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Maximum epochs.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", "-b", help="Patches per step.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="AdamW learning rate.")]
PatchOpt = Annotated[int | None, typer.Option("--patch-size", help="Cubic patch size in voxels.")]
SpacingOpt = Annotated[
    float | None, typer.Option("--spacing", help="Isotropic patch spacing (mm).")
]
PatienceOpt = Annotated[
    int | None,
    typer.Option("--patience", help="Stop after this many epochs without a better score."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of sampling, augmentation, init.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue from OUT/last_state.pt (raise --epochs).")
]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="CPU threads (0: torch's default).")]
AmpOpt = Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]


def _check_device(device: str) -> None:
    if device not in ("auto", "cpu", "cuda") and not (
        device.startswith("cuda:") and device[5:].isdigit()
    ):
        fail(f"--device: expected auto, cpu, cuda or cuda:N, found {device!r}.")


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 16:
        fail(f"--synthetic-shape: expected z,y,x with each >= 16, found {text!r}.")
    return vals  # type: ignore[return-value]


def _synthetic_datalist(out: Path, n: int, shape: str, spacing: float, seed: int) -> Path:
    """Generate (or reuse) N phantoms under OUT/synthetic and return their datalist."""
    dest = out / SYNTHETIC_DIR
    path = dest / "datalist.json"
    if path.is_file():
        import json

        doc = json.loads(path.read_text(encoding="utf-8"))
        have = sum(len(doc.get(k, [])) for k in ("training", "validation"))
        if have == n:
            err_console.print(f"reusing {have} synthetic cases in {dest}", highlight=False)
            return path
        fail(
            f"{dest} holds {have} synthetic cases, --synthetic asks for {n}; use another "
            "--out or delete that folder."
        )
    from medsnowball.training.datalist import synthetic_to_datalist

    shape_zyx = _parse_shape(shape)
    err_console.print(f"generating {n} synthetic phantoms in {dest} ...", highlight=False)
    synthetic_to_datalist(
        dest,
        n,
        seed=seed,
        shape_zyx=shape_zyx,
        spacing_zyx=(spacing, spacing, spacing),
        validation_fraction=0.25 if n >= 2 else 0.0,
    )
    return path


def _training_function(kind: str) -> Callable[..., Any]:
    """The training function of ``kind`` (imported on demand: torch loads only here)."""
    if kind == "detector":
        from medsnowball.training.detector import train_detector

        return train_detector
    from medsnowball.training.commands import train_classifier, train_segmenter

    return train_classifier if kind == "classifier" else train_segmenter


def run_training(
    kind: str,
    datalist: Path | None,
    out: Path,
    *,
    synthetic: int | None,
    synthetic_shape: str,
    synthetic_spacing: float,
    options: dict[str, Any],
    verbose: bool,
    quiet: bool,
) -> int:
    """Train one model the CLI way; returns the exit code.

    Args:
        kind: ``"classifier"``, ``"segmenter"`` or ``"detector"``.
        datalist: Datalist JSON (or ``None`` with ``synthetic``).
        out: Output folder.
        synthetic: Number of phantoms to generate instead of a datalist.
        synthetic_shape: ``"z,y,x"`` of the phantoms.
        synthetic_spacing: Phantom voxel size (mm).
        options: Keyword arguments of the training function (``None`` values dropped:
            the recipe's defaults apply).
        verbose: Debug logging.
        quiet: Only warnings and errors.

    Returns:
        0 on success, 1 on a training failure, 2 on bad inputs, 130 when interrupted.
    """
    _check_device(str(options.get("device", "auto")))
    if (datalist is None) == (synthetic is None):
        fail("give either a DATALIST or --synthetic N (not both, not neither).")
    if synthetic is not None and synthetic < 2:
        fail(f"--synthetic: expected >= 2 phantoms (training and validation), found {synthetic}.")
    if datalist is not None and not datalist.is_file():
        fail(f"datalist {datalist} does not exist.")
    for name in ("epochs", "batch_size", "patience", "patch_size"):
        v = options.get(name)
        if v is not None and v < 1:
            fail(f"--{name.replace('_', '-')}: expected >= 1, found {v}.")
    setup_logging(verbose=verbose, quiet=quiet, log_file=out / "train.log")

    from medsnowball.core.errors import (
        CheckpointError,
        ConfigError,
        CorruptFileError,
        MedsnowballError,
        MissingDependencyError,
    )

    try:
        if synthetic is not None:
            datalist = _synthetic_datalist(
                out, synthetic, synthetic_shape, synthetic_spacing, int(options.get("seed", 0))
            )
        fn = _training_function(kind)
        kwargs = {k: v for k, v in options.items() if v is not None}
        if datalist is None:  # unreachable: checked above
            fail("no datalist.")
        result = fn(datalist, out, **kwargs)
    except (
        ConfigError,
        CorruptFileError,
        CheckpointError,
        MissingDependencyError,
        FileNotFoundError,
    ) as exc:
        fail(f"{type(exc).__name__}: {exc}", code=EXIT_USAGE)
    except MedsnowballError as exc:
        fail(f"{type(exc).__name__}: {exc}", code=EXIT_FAILED)
    except KeyboardInterrupt:
        err_console.print(
            "Interrupted. Rerun the same command with --resume to continue from the last epoch."
        )
        return EXIT_INTERRUPTED
    if not quiet:
        best = result.best_checkpoint
        stop = " (stopped early)" if result.stopped_early else ""
        err_console.print(
            f"[green]{result.epochs_run} epoch(s){stop}[/] in {result.seconds:.1f} s; best score "
            f"{result.best_score:.4f} at epoch {result.best_epoch} -> {best}; per-epoch metrics "
            f"in {out / 'metrics.csv'}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


@train_app.command("classifier")
def classifier(
    out: OutOpt,
    datalist: DatalistArg = None,
    synthetic: SyntheticOpt = None,
    synthetic_shape: SyntheticShapeOpt = "96,128,128",
    synthetic_spacing: SyntheticSpacingOpt = 1.5,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    patch_size: PatchOpt = None,
    spacing: SpacingOpt = None,
    negatives_per_case: Annotated[
        int | None, typer.Option("--negatives-per-case", help="Negative patches per scan.")
    ] = None,
    positive_copies: Annotated[
        int | None, typer.Option("--positive-copies", help="Jittered patches per nodule.")
    ] = None,
    patience: PatienceOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    resume: ResumeOpt = False,
    threads: ThreadsOpt = 0,
    amp: AmpOpt = True,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the false-positive reduction CNN on candidate patches.

    Defaults (the shipped recipe): 20 epochs, batch 32, lr 1e-3, 32^3 patches at 1 mm,
    40 negatives per scan, 6 copies per nodule, patience 5. Validation every epoch
    (patch CPM); best.safetensors keeps the best epoch.
    """
    code = run_training(
        "classifier",
        datalist,
        out,
        synthetic=synthetic,
        synthetic_shape=synthetic_shape,
        synthetic_spacing=synthetic_spacing,
        options={
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "patch_size": patch_size,
            "spacing_mm": spacing,
            "negatives_per_case": negatives_per_case,
            "positive_copies": positive_copies,
            "patience": patience,
            "device": device,
            "seed": seed,
            "resume": resume,
            "threads": threads,
            "amp": amp,
        },
        verbose=verbose,
        quiet=quiet,
    )
    raise typer.Exit(code)


@train_app.command("segmenter")
def segmenter(
    out: OutOpt,
    datalist: DatalistArg = None,
    synthetic: SyntheticOpt = None,
    synthetic_shape: SyntheticShapeOpt = "96,128,128",
    synthetic_spacing: SyntheticSpacingOpt = 1.5,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    patch_size: PatchOpt = None,
    spacing: SpacingOpt = None,
    copies: Annotated[
        int | None, typer.Option("--copies", help="Jittered patches per nodule.")
    ] = None,
    patience: PatienceOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    resume: ResumeOpt = False,
    threads: ThreadsOpt = 0,
    amp: AmpOpt = True,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the nodule U-Net on patches around nodules (datalist items need "seg" masks).

    Defaults (the shipped recipe): 30 epochs, batch 8, lr 2e-3, 32^3 patches at 0.8 mm,
    3 copies per nodule, patience 6. Validation every epoch (mean Dice).
    """
    if patch_size is not None and patch_size % 8:
        fail(f"--patch-size: the U-Net needs a multiple of 8, found {patch_size}.")
    code = run_training(
        "segmenter",
        datalist,
        out,
        synthetic=synthetic,
        synthetic_shape=synthetic_shape,
        synthetic_spacing=synthetic_spacing,
        options={
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "patch_size": patch_size,
            "spacing_mm": spacing,
            "copies": copies,
            "patience": patience,
            "device": device,
            "seed": seed,
            "resume": resume,
            "threads": threads,
            "amp": amp,
        },
        verbose=verbose,
        quiet=quiet,
    )
    raise typer.Exit(code)


def _parse_patch(text: str) -> tuple[int, int, int]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 8:
        fail(f"--patch-size: expected z,y,x voxels (each >= 8), found {text!r}.")
    return vals  # type: ignore[return-value]


def _detector_model_config(model_config: Path | None, small: bool) -> Any:
    """The ModelConfig behind --model-config / --small (None: the bundle's)."""
    if model_config is not None and small:
        fail("give --model-config or --small, not both.")
    if small:
        from medsnowball.training.detector import small_retinanet_config

        return small_retinanet_config()
    if model_config is None:
        return None
    import json

    from medsnowball.core.errors import ConfigError
    from medsnowball.models.config import ModelConfig

    try:
        doc = json.loads(model_config.read_text(encoding="utf-8"))
        return ModelConfig.from_dict(doc)
    except (OSError, json.JSONDecodeError, ConfigError) as exc:
        fail(f"--model-config {model_config}: {exc}")


@train_app.command("detector")
def detector(
    out: OutOpt,
    datalist: DatalistArg = None,
    synthetic: SyntheticOpt = None,
    synthetic_shape: SyntheticShapeOpt = "96,128,128",
    synthetic_spacing: SyntheticSpacingOpt = 1.5,
    epochs: EpochsOpt = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help="Patches per step (one scan).")
    ] = None,
    patch_size: Annotated[
        str | None,
        typer.Option(
            "--patch-size",
            help="Training patch z,y,x voxels (bundle: 80,192,192).",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak SGD learning rate.")] = None,
    val_every: Annotated[
        int | None, typer.Option("--val-every", help="Validate (CPM) every N epochs.")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option("--patience", help="Stop after N validations without a better CPM."),
    ] = None,
    warmup_epochs: Annotated[
        int | None, typer.Option("--warmup-epochs", help="Linear learning-rate warm-up.")
    ] = None,
    init_weights: Annotated[
        Path | None,
        typer.Option(
            "--init-weights",
            help="Fine-tune from these weights (the bundle's models/model.pt or a "
            ".safetensors of ours).",
            show_default=False,
        ),
    ] = None,
    model_config: Annotated[
        Path | None,
        typer.Option(
            "--model-config",
            help="ModelConfig JSON (architecture, spacing, HU window); default: the bundle's.",
            show_default=False,
        ),
    ] = None,
    small: Annotated[
        bool,
        typer.Option(
            "--small",
            help="Reduced ResNet-10 detector at 3 mm, 32x64x64 patches (quick CPU trials).",
        ),
    ] = False,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Keep preprocessed scans in memory.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader worker processes.")] = 0,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    resume: ResumeOpt = False,
    threads: ThreadsOpt = 0,
    amp: AmpOpt = True,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the full-volume MONAI RetinaNet detector (needs the 'detection' extra).

    Recipe of MONAI's lung_nodule_ct_detection bundle: ResNet-50 FPN, 0.703125 x 0.703125
    x 1.25 mm, 80x192x192 patches, 4 per scan, ATSS matcher, hard-negative sampling, SGD lr
    1e-2 with 10 warm-up epochs, 300 epochs, CPM validation every 10 epochs. Needs a GPU
    for real data (a 256x256x128 forward pass takes ~90 s on 2 CPU threads). See
    docs/detector.md.
    """
    _check_device(device)
    from medsnowball.models.retinanet import torchvision_available

    if not torchvision_available():
        fail(
            "the RetinaNet detector needs torchvision, which is not installed: "
            f"{DETECTION_EXTRA_HINT} (or the torchvision build matching your torch)."
        )
    if init_weights is not None and not init_weights.is_file():
        fail(f"--init-weights: {init_weights} does not exist.")
    for name, v in (("val-every", val_every), ("workers", workers + 1)):
        if v is not None and v < 1:
            fail(f"--{name}: expected >= 1, found {v}.")
    if warmup_epochs is not None and warmup_epochs < 0:
        fail(f"--warmup-epochs: expected >= 0, found {warmup_epochs}.")
    code = run_training(
        "detector",
        datalist,
        out,
        synthetic=synthetic,
        synthetic_shape=synthetic_shape,
        synthetic_spacing=synthetic_spacing,
        options={
            "epochs": epochs,
            "batch_size": batch_size,
            "patch_size_zyx": _parse_patch(patch_size)
            if patch_size is not None
            else (SMALL_PATCH_ZYX if small else None),
            "lr": lr,
            "val_every": val_every,
            "patience": patience,
            "warmup_epochs": warmup_epochs,
            "init_weights": init_weights,
            "model_config": _detector_model_config(model_config, small),
            "cache": cache,
            "num_workers": workers,
            "device": device,
            "seed": seed,
            "resume": resume,
            "threads": threads,
            "amp": amp,
        },
        verbose=verbose,
        quiet=quiet,
    )
    raise typer.Exit(code)


@train_app.command("convert-luna16")
def convert_luna16(
    annotations: Annotated[
        Path,
        typer.Argument(
            help="LUNA16 annotations.csv (seriesuid,coordX,coordY,coordZ,diameter_mm).",
            show_default=False,
        ),
    ],
    images: Annotated[
        Path,
        typer.Argument(
            help="Folder searched recursively for <seriesuid>.mhd (the subset0..9 folders).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Datalist JSON to write.", show_default=False)
    ],
    validation_fraction: Annotated[
        float, typer.Option("--validation-fraction", help="Share of scans in 'validation'.")
    ] = 0.2,
    seed: SeedOpt = 0,
    include_empty: Annotated[
        bool,
        typer.Option("--include-empty/--no-empty", help="Keep scans without nodules (negatives)."),
    ] = True,
) -> None:
    """Write a training datalist from LUNA16's annotations.csv and .mhd images."""
    setup_logging()
    if not annotations.is_file():
        fail(f"annotations file {annotations} does not exist.")
    if not images.is_dir():
        fail(f"image folder {images} does not exist.")
    from medsnowball.core.errors import MedsnowballError
    from medsnowball.training.datalist import luna16_to_datalist

    try:
        dl = luna16_to_datalist(annotations, images, out, validation_fraction, seed, include_empty)
    except MedsnowballError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    _report_datalist(dl, out)


@train_app.command("convert-lidc")
def convert_lidc(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for images/, masks/, datalist.json.", show_default=False
        ),
    ],
    validation_fraction: Annotated[
        float, typer.Option("--validation-fraction", help="Share of scans in 'validation'.")
    ] = 0.2,
    seed: SeedOpt = 0,
    agreement: Annotated[
        float, typer.Option("--agreement", help="Consensus level of the reader masks.")
    ] = 0.5,
    min_readers: Annotated[
        int, typer.Option("--min-readers", help="Skip nodules marked by fewer readers.")
    ] = 1,
    max_scans: Annotated[
        int | None,
        typer.Option("--max-scans", help="Convert at most this many scans.", show_default=False),
    ] = None,
) -> None:
    """Convert LIDC-IDRI (through pylidc) to images, consensus masks and a datalist.

    pylidc must be configured with the LIDC-IDRI DICOM folder (~/.pylidcrc).
    """
    setup_logging()
    if not 0.0 < agreement <= 1.0:
        fail(f"--agreement: expected a number in (0, 1], found {agreement}.")
    from medsnowball.core.errors import MedsnowballError
    from medsnowball.training.datalist import lidc_to_datalist

    try:
        dl = lidc_to_datalist(out, validation_fraction, seed, agreement, min_readers, max_scans)
    except MedsnowballError as exc:  # MissingDependencyError: pylidc
        fail(f"{type(exc).__name__}: {exc}")
    _report_datalist(dl, out / "datalist.json")


@train_app.command("make-synthetic")
def make_synthetic(
    n: Annotated[int, typer.Argument(help="Number of phantoms.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for images/, masks/, lungs/, datalist.json.",
            show_default=False,
        ),
    ],
    shape: Annotated[str, typer.Option("--shape", help="Phantom grid z,y,x.")] = "96,128,128",
    spacing: Annotated[float, typer.Option("--spacing", help="Voxel size (mm).")] = 1.5,
    nodules_per_case: Annotated[
        int, typer.Option("--nodules-per-case", help="Random nodules per phantom.")
    ] = 3,
    validation_fraction: Annotated[
        float, typer.Option("--validation-fraction", help="Share of phantoms in 'validation'.")
    ] = 0.2,
    seed: SeedOpt = 0,
) -> None:
    """Generate synthetic phantoms with nodule masks and their datalist."""
    setup_logging()
    if n < 1:
        fail(f"N: expected >= 1 phantoms, found {n}.")
    shape_zyx = _parse_shape(shape)
    from medsnowball.core.errors import MedsnowballError
    from medsnowball.training.datalist import synthetic_to_datalist

    try:
        dl = synthetic_to_datalist(
            out,
            n,
            seed=seed,
            shape_zyx=shape_zyx,
            spacing_zyx=(spacing, spacing, spacing),
            nodules_per_case=nodules_per_case,
            validation_fraction=validation_fraction,
        )
    except MedsnowballError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    _report_datalist(dl, out / "datalist.json")


def _report_datalist(dl: dict[str, list[dict[str, Any]]], path: Path) -> None:
    n_tr, n_va = len(dl.get("training", [])), len(dl.get("validation", []))
    n_box = sum(len(i.get("box", [])) for s in dl.values() for i in s)
    err_console.print(
        f"wrote {path}: {n_tr} training + {n_va} validation scans, {n_box} nodules",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``train`` sub-app to the app."""
    app.add_typer(train_app, name="train")
