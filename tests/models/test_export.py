"""TorchScript and ONNX export give the same outputs as the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medsnowball.core.errors import ConfigError
from medsnowball.models.checkpoint import load_model, save_checkpoint
from medsnowball.models.config import ModelConfig
from medsnowball.models.export import export_model
from medsnowball.models.networks import build_model


@pytest.fixture(params=["classifier", "unet"])
def checkpoint(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tiny_classifier_config: ModelConfig,
    tiny_unet_config: ModelConfig,
) -> Path:
    cfg = tiny_classifier_config if request.param == "classifier" else tiny_unet_config
    torch.manual_seed(3)
    model = build_model(cfg)
    # non-trivial batch-norm statistics so that eval mode matters
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 1, *cfg.patch.size_zyx))
    return save_checkpoint(tmp_path / f"{request.param}.safetensors", model, cfg)


def test_torchscript_and_onnx_parity(checkpoint: Path, tmp_path: Path) -> None:
    formats: tuple[str, ...] = ("torchscript",)
    ort = None
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError:
        pass
    else:
        formats = ("torchscript", "onnx")
    written = export_model(checkpoint, tmp_path / "out", formats=formats)
    assert written["config"].is_file()
    model, cfg = load_model(checkpoint)
    x = torch.rand(3, 1, *cfg.patch.size_zyx, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model(x).numpy()
    ts = torch.jit.load(str(written["torchscript"]))
    with torch.no_grad():
        np.testing.assert_allclose(ts(x).numpy(), ref, rtol=1e-4, atol=1e-5)
    if ort is None:
        pytest.skip("onnx / onnxruntime not installed: ONNX parity not checked")
    sess = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"patch": x.numpy()})  # batch 3 != traced batch 2: dynamic axis
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


def test_unknown_format_is_rejected(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tflite"):
        export_model(checkpoint, tmp_path, formats=("tflite",))
