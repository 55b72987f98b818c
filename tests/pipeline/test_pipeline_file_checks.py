"""Files named in a pipeline (checkpoints) are checked when the pipeline loads, not per case."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline import Pipeline

FP = 4  # steps[4] is fp_reduce in the shipped screening pipeline
SEG = 5  # steps[5] is segment


def _screening() -> dict[str, Any]:
    return Pipeline.from_yaml("lung_nodule_screening").to_dict()


def test_missing_fp_checkpoint_fails_at_from_dict(tmp_path: Path) -> None:
    data = _screening()
    assert data["steps"][FP]["step"] == "fp_reduce"
    missing = tmp_path / "weights" / "fp_missing.safetensors"
    data["steps"][FP]["config"]["checkpoint"] = str(missing)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        Pipeline.from_dict(data, origin="mine.yaml")
    assert time.perf_counter() - t0 < 5.0  # no model is loaded to find out
    msg = str(info.value)
    assert msg.startswith("mine.yaml: steps[4].config.checkpoint (fp_reduce): ")
    assert str(missing) in msg
    assert "no such file" in msg
    assert "null" in msg  # the fix: a correct path, or null for the shipped weights


def test_missing_unet_checkpoint_in_a_yaml_file_fails_at_from_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _screening()
    assert data["steps"][SEG]["step"] == "segment"
    data["steps"][SEG].setdefault("config", {}).update(
        method="unet", checkpoint="models/unet.safetensors"
    )
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(path)
    msg = str(info.value)
    assert "steps[5].config.checkpoint (segment)" in msg
    assert "'models/unet.safetensors'" in msg
    assert "relative to the working directory" in msg
    assert str(path) in msg  # the file that holds the bad key


def test_a_folder_is_not_a_checkpoint(tmp_path: Path) -> None:
    data = _screening()
    data["steps"][FP]["config"]["checkpoint"] = str(tmp_path)
    with pytest.raises(ConfigError, match=r"steps\[4\]\.config\.checkpoint .*found a folder"):
        Pipeline.from_dict(data)


def test_existing_checkpoint_and_null_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "fp.safetensors"
    weights.write_bytes(b"\0" * 16)  # the file's contents are checked when the model loads
    data = _screening()
    data["steps"][FP]["config"]["checkpoint"] = str(weights)
    pipe = Pipeline.from_dict(data)
    assert pipe.steps[FP].config.checkpoint == str(weights)
    monkeypatch.chdir(tmp_path)
    data["steps"][FP]["config"]["checkpoint"] = os.path.basename(weights)  # relative, found
    Pipeline.from_dict(data)
    data["steps"][FP]["config"]["checkpoint"] = None  # shipped weights
    Pipeline.from_dict(data)
