"""``medsnowball export``: write a trained model as TorchScript and ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medsnowball.cli.common import EXIT_FAILED, err_console, fail, setup_logging

__all__ = ["parity", "register", "resolve_checkpoint"]

FORMATS = ("torchscript", "onnx")
EXPORT_EXTRA_HINT = 'pip install "medsnowball[export]"'


def resolve_checkpoint(name_or_path: str) -> Path:
    """A checkpoint path, or the packaged model of that name (``fp_classifier``,
    ``nodule_unet``: ``medsnowball/models/weights/<name>.safetensors``).

    Raises:
        FileNotFoundError: Neither a file nor a packaged model (names the packaged ones).
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    weights = Path(__file__).resolve().parents[2] / "models" / "weights"
    packaged = weights / f"{name_or_path}.safetensors"
    if p.suffix == "" and packaged.is_file():
        return packaged
    names = sorted(f.name.split(".")[0] for f in weights.glob("*.safetensors"))
    raise FileNotFoundError(
        f"checkpoint {name_or_path!r} is neither a file nor a packaged model; packaged "
        f"models: {', '.join(names) or 'none'}."
    )


def parity(checkpoint: Path, written: dict[str, Path], batch: int = 3) -> dict[str, float]:
    """Max absolute difference between the checkpoint's outputs and each export's.

    The input is a seeded random batch of the model's patch size (a different batch
    size from the traced one, so the dynamic batch axis is exercised).

    Args:
        checkpoint: The checkpoint the exports were made from.
        written: Format -> exported file (``torchscript`` and/or ``onnx``).
        batch: Batch size of the check.

    Returns:
        Format -> max |difference| of the logits.
    """
    import warnings

    import numpy as np
    import torch

    from medsnowball.models.checkpoint import load_model

    model, config = load_model(checkpoint, device="cpu")
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((batch, 1, *config.patch.size_zyx), generator=gen)
    with torch.no_grad():
        ref = model(x).float().numpy()
    diffs: dict[str, float] = {}
    if "torchscript" in written:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
            ts = torch.jit.load(str(written["torchscript"]), map_location="cpu")
        with torch.no_grad():
            out = ts(x).float().numpy()
        diffs["torchscript"] = float(np.max(np.abs(out - ref)))
    if "onnx" in written:
        import onnxruntime

        sess = onnxruntime.InferenceSession(
            str(written["onnx"]), providers=["CPUExecutionProvider"]
        )
        name = sess.get_inputs()[0].name
        out_onnx: Any = sess.run(None, {name: x.numpy()})[0]
        diffs["onnx"] = float(np.max(np.abs(np.asarray(out_onnx, dtype=np.float32) - ref)))
    return diffs


def register(app: typer.Typer) -> None:
    """Add ``export`` to the app."""

    @app.command("export")
    def export(
        checkpoint: Annotated[
            str,
            typer.Argument(
                help="Checkpoint file (.safetensors, or .pt with a .json sidecar) or a packaged "
                "model name: fp_classifier, nodule_unet.",
                show_default=False,
            ),
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Output folder.", show_default=False)
        ],
        formats: Annotated[
            str,
            typer.Option("--format", "-f", help="Comma-separated: torchscript,onnx."),
        ] = "torchscript,onnx",
        check: Annotated[
            bool,
            typer.Option(
                "--check/--no-check",
                help="Run the exported models on a random batch and compare with the "
                "checkpoint (max absolute difference of the logits).",
            ),
        ] = True,
        tolerance: Annotated[
            float,
            typer.Option("--tolerance", help="Largest accepted difference with --check."),
        ] = 1e-4,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    ) -> None:
        """Export a model to TorchScript and ONNX, and check that the exports agree.

        Writes OUT/<name>.ts, OUT/<name>.onnx and OUT/<name>.json (the config: patch size,
        spacing and HU window the graph expects).

        Exit code 0: ok; 1: parity check failed; 2: bad checkpoint, format or missing extra.
        """
        setup_logging(verbose=verbose)
        fmts = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
        bad = [f for f in fmts if f not in FORMATS]
        if not fmts or bad:
            fail(f"--format: expected torchscript and/or onnx, found {formats!r}.")
        try:
            ckpt = resolve_checkpoint(checkpoint)
        except FileNotFoundError as exc:
            fail(str(exc))
        import importlib.util

        if "onnx" in fmts and importlib.util.find_spec("onnx") is None:
            fail(f"ONNX export needs the 'onnx' package: {EXPORT_EXTRA_HINT}.")
        if check and "onnx" in fmts and importlib.util.find_spec("onnxruntime") is None:
            fail(f"--check of the ONNX export needs onnxruntime: {EXPORT_EXTRA_HINT}.")

        from medsnowball.core.errors import MedsnowballError
        from medsnowball.models.export import export_model

        try:
            written = export_model(ckpt, out, fmts)
        except MedsnowballError as exc:
            fail(f"{type(exc).__name__}: {exc}")
        err_console.print(
            "wrote " + ", ".join(str(p) for p in written.values()), highlight=False, soft_wrap=True
        )
        if not check:
            raise typer.Exit(0)
        diffs = parity(ckpt, written)
        worst = 0.0
        for name, d in diffs.items():
            ok = d <= tolerance
            worst = max(worst, d)
            typer.echo(f"{name}: max abs difference {d:.3g} ({'ok' if ok else 'FAILED'})")
        if worst > tolerance:
            fail(
                f"exported model differs from the checkpoint by {worst:.3g} > {tolerance:g}.",
                code=EXIT_FAILED,
            )
        raise typer.Exit(0)
