"""Export trained models to TorchScript and ONNX for deployment.

Both exports take the network of a medsnowball checkpoint and a dummy input of the
checkpoint's patch size; the exported graph outputs logits like the original.
``export_model`` is the function behind ``medsnowball export``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from medsnowball.core.atomic import atomic_path, atomic_write_text
from medsnowball.core.errors import ConfigError, MissingDependencyError
from medsnowball.models.checkpoint import load_model
from medsnowball.models.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("torchscript", "onnx")


def example_input(config: ModelConfig, batch: int = 2) -> torch.Tensor:
    """Deterministic example input ``(batch, 1, *patch.size_zyx)`` in [0, 1]."""
    import torch

    gen = torch.Generator().manual_seed(0)
    return torch.rand((batch, 1, *config.patch.size_zyx), generator=gen)


def export_torchscript(model: nn.Module, config: ModelConfig, path: str | os.PathLike[str]) -> Path:
    """Trace ``model`` (eval mode, CPU) and save it as TorchScript.

    Args:
        model: The network.
        config: Its configuration (gives the input shape).
        path: Destination ``.pt`` / ``.ts`` file.

    Returns:
        The path written.
    """
    import torch

    model = model.to("cpu").eval()
    with warnings.catch_warnings():
        # torch.jit is deprecated upstream but remains the way to get a Python-free model
        warnings.simplefilter("ignore", DeprecationWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model, example_input(config), check_trace=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))
    return Path(path)


def onnx_available() -> bool:
    """True when the ``onnx`` package (needed by ``torch.onnx.export``) is importable."""
    return importlib.util.find_spec("onnx") is not None


def export_onnx(
    model: nn.Module, config: ModelConfig, path: str | os.PathLike[str], opset: int = 17
) -> Path:
    """Export ``model`` to ONNX with a dynamic batch axis.

    Args:
        model: The network.
        config: Its configuration (gives the input shape).
        path: Destination ``.onnx`` file.
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: ``onnx`` is not installed (extra ``export``).
    """
    import torch

    if not onnx_available():
        raise MissingDependencyError(
            "ONNX export needs the 'onnx' package: pip install 'medsnowball[export]' "
            "(onnx, onnxruntime)."
        )
    model = model.to("cpu").eval()
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example_input(config),),
            str(tmp),
            input_names=["patch"],
            output_names=["logits"],
            dynamic_axes={"patch": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return Path(path)


def export_model(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    formats: tuple[str, ...] = EXPORT_FORMATS,
) -> dict[str, Path]:
    """Export a checkpoint to deployment formats (``medsnowball export``).

    Writes ``<stem>.ts`` (TorchScript), ``<stem>.onnx`` and ``<stem>.json`` (the model
    config: patch size, spacing and HU window the exported graph expects).

    Args:
        checkpoint: A medsnowball checkpoint.
        out_dir: Output folder (created).
        formats: Any of ``"torchscript"``, ``"onnx"``.

    Returns:
        Format name -> path written (``"config"`` for the JSON).

    Raises:
        ConfigError: Unknown format.
        CheckpointError: Unreadable checkpoint.
        MissingDependencyError: ONNX requested without ``onnx`` installed.
    """
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise ConfigError(f"unknown export format(s) {bad}; choose from {list(EXPORT_FORMATS)}.")
    model, config = load_model(checkpoint, device="cpu")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(checkpoint).name.split(".")[0]
    written: dict[str, Path] = {}
    if "torchscript" in formats:
        written["torchscript"] = export_torchscript(model, config, out / f"{stem}.ts")
    if "onnx" in formats:
        written["onnx"] = export_onnx(model, config, out / f"{stem}.onnx")
    written["config"] = atomic_write_text(
        out / f"{stem}.json", json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    )
    for name, p in written.items():
        logger.info("exported %s -> %s", name, p)
    return written


__all__ = [
    "EXPORT_FORMATS",
    "example_input",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "onnx_available",
]
