"""``medsnowball export``: TorchScript + ONNX of a packaged model, with a parity check."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medsnowball.cli import app

runner = CliRunner()
WEIGHTS = Path(__file__).resolve().parents[2] / "medsnowball" / "models" / "weights"
HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


@pytest.mark.skipif(not HAS_ONNX, reason="needs the 'export' extra (onnx, onnxruntime)")
@pytest.mark.skipif(
    not (WEIGHTS / "fp_classifier.safetensors").is_file(), reason="packaged weights absent"
)
def test_packaged_model_exports_with_parity(tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", "fp_classifier", "-o", str(tmp_path), "--check"])
    assert res.exit_code == 0, res.output
    for suffix in (".ts", ".onnx", ".json"):
        assert (tmp_path / f"fp_classifier{suffix}").stat().st_size > 0
    diffs = dict(re.findall(r"(torchscript|onnx): max abs difference (\S+)", res.output))
    assert set(diffs) == {"torchscript", "onnx"}
    assert all(float(v) <= 1e-4 for v in diffs.values())
    cfg = json.loads((tmp_path / "fp_classifier.json").read_text())
    assert cfg["kind"] == "fp_classifier"

    # the exported ONNX graph gives the checkpoint's probabilities on a real-sized batch
    import numpy as np
    import onnxruntime
    import torch

    from medsnowball.models.checkpoint import load_model

    model, config = load_model(WEIGHTS / "fp_classifier.safetensors")
    x = np.random.default_rng(3).random((5, 1, *config.patch.size_zyx), dtype=np.float32)
    sess = onnxruntime.InferenceSession(
        str(tmp_path / "fp_classifier.onnx"), providers=["CPUExecutionProvider"]
    )
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_unet_torchscript_only(tmp_path: Path) -> None:
    if not (WEIGHTS / "nodule_unet.safetensors").is_file():
        pytest.skip("packaged weights absent")
    res = runner.invoke(
        app, ["export", "nodule_unet", "-o", str(tmp_path), "--format", "torchscript"]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "nodule_unet.ts").is_file()
    assert not (tmp_path / "nodule_unet.onnx").exists()
    assert "onnx:" not in res.output
    assert "torchscript: max abs difference" in res.output


def test_export_errors_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", "no_such_model", "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert "packaged models" in res.output
    res = runner.invoke(app, ["export", "fp_classifier", "-o", str(tmp_path), "-f", "tflite"])
    assert res.exit_code == 2
    assert "--format" in res.output
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["export", str(junk), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "CheckpointError" in res.output


def test_missing_onnx_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object) -> object:
        return None if name == "onnx" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    res = runner.invoke(app, ["export", "fp_classifier", "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert 'pip install "medsnowball[export]"' in res.output
