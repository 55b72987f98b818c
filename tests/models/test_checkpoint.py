"""Checkpoints: round trip, refused pickles, incompatible weights."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from medsnowball.core.errors import CheckpointError, ConfigError
from medsnowball.models.checkpoint import (
    load_checkpoint,
    load_into,
    load_model,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from medsnowball.models.config import ModelConfig, PatchSpec
from medsnowball.models.networks import build_fp_classifier, build_nodule_unet


class _Evil:
    """Unpickling this object creates a file (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_round_trip_restores_weights_and_config(
    tmp_path: Path, tiny_classifier_config: ModelConfig, suffix: str
) -> None:
    torch.manual_seed(1)
    model = build_fp_classifier(tiny_classifier_config).eval()
    cfg = ModelConfig.from_dict(
        {**tiny_classifier_config.to_dict(), "training": {"epochs": 3, "auc": 0.91}}
    )
    path = save_checkpoint(tmp_path / f"m{suffix}", model, cfg)
    ckpt = load_checkpoint(path)
    assert ckpt.config == cfg
    assert ckpt.config.patch.spacing_zyx == (1.5, 1.5, 1.5)
    assert ckpt.config.training["auc"] == pytest.approx(0.91)
    loaded, _ = load_model(path)
    x = torch.rand(3, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)


def test_pickled_payload_is_refused_and_never_executed(
    tmp_path: Path, tiny_classifier_config: ModelConfig
) -> None:
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "evil.pt"
    torch.save({"weight": _Evil(marker)}, bad)
    (tmp_path / "evil.json").write_text(json.dumps(tiny_classifier_config.to_dict()))
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(bad)
    assert not marker.exists()
    # a plain (legacy, non-zip) pickle file is refused too
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(_Evil(marker)))
    (tmp_path / "legacy.json").write_text(json.dumps(tiny_classifier_config.to_dict()))
    with pytest.raises(CheckpointError):
        load_checkpoint(legacy)
    assert not marker.exists()
    # a pickle disguised as .safetensors
    disguised = tmp_path / "disguised.safetensors"
    disguised.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError, match=r"disguised\.safetensors"):
        load_checkpoint(disguised)
    with pytest.raises(CheckpointError):
        load_training_state(legacy)
    assert not marker.exists()


def test_incompatible_weights_name_the_file_and_the_problem(
    tmp_path: Path, tiny_classifier_config: ModelConfig, tiny_unet_config: ModelConfig
) -> None:
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        build_fp_classifier(tiny_classifier_config),
        tiny_classifier_config,
    )
    ckpt = load_checkpoint(path)
    wider = ModelConfig.from_dict({**tiny_classifier_config.to_dict(), "channels": [8, 8, 16]})
    with pytest.raises(CheckpointError, match=r"c\.safetensors.*shape mismatch"):
        load_into(build_fp_classifier(wider), ckpt.state_dict, path)
    with pytest.raises(CheckpointError, match="missing key"):
        load_into(build_nodule_unet(tiny_unet_config), ckpt.state_dict, path)


def test_missing_config_and_file_are_reported(
    tmp_path: Path, tiny_classifier_config: ModelConfig
) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    state_only = tmp_path / "w.pt"
    torch.save(build_fp_classifier(tiny_classifier_config).state_dict(), state_only)
    with pytest.raises(CheckpointError, match=r"w\.json"):
        load_checkpoint(state_only)
    from safetensors.torch import save_file

    raw = tmp_path / "raw.safetensors"
    save_file({"a": torch.zeros(2)}, str(raw))
    with pytest.raises(CheckpointError, match="no 'medsnowball' config"):
        load_checkpoint(raw)


def test_config_validation_names_the_bad_key() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        ModelConfig.from_dict({"kind": "fp_classifier", "bogus": 1})
    with pytest.raises(ConfigError, match="newer"):
        ModelConfig.from_dict({"kind": "fp_classifier", "version": 99})
    with pytest.raises(ConfigError, match="hu_max"):
        PatchSpec(hu_min=100, hu_max=0)


def test_training_state_round_trip(tmp_path: Path) -> None:
    state = {"epoch": 4, "best": 0.8, "model": {"w": torch.ones(2)}, "history": [1.0, 0.5]}
    p = save_training_state(tmp_path / "last.pt", state)
    back = load_training_state(p)
    assert back["epoch"] == 4
    assert torch.equal(back["model"]["w"], torch.ones(2))
    assert back["history"] == [1.0, 0.5]
