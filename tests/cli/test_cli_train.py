"""``medsnowball train``: tiny runs on synthetic phantoms, resume, datalist converters."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medsnowball.cli import app
from medsnowball.models.retinanet import torchvision_available

runner = CliRunner()

# Small phantoms and 16^3 patches keep a training epoch at about a second on CPU.
TINY = ["--epochs", "1", "--patch-size", "16", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    res = runner.invoke(
        app,
        [
            "train",
            "make-synthetic",
            "3",
            "-o",
            str(out),
            "--shape",
            "48,64,64",
            "--spacing",
            "2",
            "--nodules-per-case",
            "2",
            "--validation-fraction",
            "0.34",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "2 training + 1 validation scans" in res.output
    return out / "datalist.json"


def _metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_classifier_trains_writes_checkpoint_and_resumes(
    tiny_datalist: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clf"
    args = [
        "train",
        "classifier",
        str(tiny_datalist),
        "-o",
        str(out),
        *TINY,
        "--batch-size",
        "16",
        "--negatives-per-case",
        "8",
        "--positive-copies",
        "2",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "best.safetensors").stat().st_size > 10_000
    rows = _metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1.0"]
    assert {"train_loss", "val_cpm", "val_auc"} <= set(rows[0])
    first_loss = rows[0]["train_loss"]

    args[args.index("--epochs") + 1] = "2"
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    rows = _metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1.0", "2.0"]  # epoch 1 kept, only epoch 2 ran
    assert rows[0]["train_loss"] == first_loss
    assert "2 epoch(s)" in res.output

    from medsnowball.models.checkpoint import load_checkpoint

    ck = load_checkpoint(out / "best.safetensors")
    assert ck.config.kind == "fp_classifier"
    assert tuple(ck.config.patch.size_zyx) == (16, 16, 16)


def test_segmenter_on_generated_phantoms(tmp_path: Path) -> None:
    out = tmp_path / "seg"
    res = runner.invoke(
        app,
        [
            "train",
            "segmenter",
            "--synthetic",
            "2",
            "--synthetic-shape",
            "48,64,64",
            "--synthetic-spacing",
            "2",
            "-o",
            str(out),
            *TINY,
            "--batch-size",
            "4",
            "--copies",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "synthetic" / "datalist.json").is_file()
    assert (out / "best.safetensors").is_file()
    rows = _metrics(out / "metrics.csv")
    assert len(rows) == 1
    assert 0.0 <= float(rows[0]["val_dice"]) <= 1.0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "classifier", "-o", str(tmp_path / "a")])
    assert res.exit_code == 2
    assert "--synthetic" in res.output
    res = runner.invoke(
        app, ["train", "classifier", str(tmp_path / "none.json"), "-o", str(tmp_path / "a")]
    )
    assert res.exit_code == 2
    assert "does not exist" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"training": [{"box": []}]}))
    res = runner.invoke(app, ["train", "segmenter", str(bad), "-o", str(tmp_path / "b")])
    assert res.exit_code == 2
    assert "'image'" in res.output
    res = runner.invoke(
        app, ["train", "classifier", str(bad), "-o", str(tmp_path / "c"), "--device", "tpu"]
    )
    assert res.exit_code == 2
    assert "--device" in res.output


HAS_TORCHVISION = torchvision_available()


def test_detector_names_what_is_missing(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "detector", "-o", str(tmp_path)])
    assert res.exit_code == 2
    if not HAS_TORCHVISION:
        assert 'pip install "medsnowball[detection]"' in res.output
    else:
        assert "--synthetic" in res.output  # neither DATALIST nor --synthetic given


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed")
def test_detector_without_torchvision_exits_2_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "det"
    res = runner.invoke(
        app, ["train", "detector", "--synthetic", "2", "-o", str(out), "--device", "cpu"]
    )
    assert res.exit_code == 2
    assert 'pip install "medsnowball[detection]"' in res.output
    assert "torchvision" in res.output
    assert not (out / "synthetic").exists()  # no phantoms generated, nothing trained


def test_detector_usage_errors_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["train", "detector", "--synthetic", "2", "-o", str(tmp_path), "--device", "tpu"]
    )
    assert res.exit_code == 2
    assert "--device" in res.output
    if HAS_TORCHVISION:
        res = runner.invoke(
            app,
            ["train", "detector", "--synthetic", "2", "-o", str(tmp_path), "--patch-size", "8,8"],
        )
        assert res.exit_code == 2
        assert "--patch-size" in res.output


@pytest.mark.skipif(not HAS_TORCHVISION, reason="needs torchvision (the detection extra)")
def test_detector_trains_small_config(tiny_datalist: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    res = runner.invoke(
        app,
        [
            "train",
            "detector",
            str(tiny_datalist),
            "-o",
            str(out),
            "--small",
            "--patch-size",
            "16,32,32",
            "--batch-size",
            "2",
            "--epochs",
            "1",
            "--lr",
            "0.002",
            "--warmup-epochs",
            "0",
            "--threads",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = _metrics(out / "metrics.csv")
    assert len(rows) == 1
    assert 0.0 <= float(rows[0]["val_cpm"]) <= 1.0  # the last epoch is always validated
    assert float(rows[0]["steps"]) == 2  # two training scans, one step each

    from medsnowball.models.checkpoint import load_checkpoint

    ck = load_checkpoint(out / "best.safetensors")
    assert ck.config.kind == "retinanet"
    assert ck.config.training["patch_size_zyx"] == [16, 32, 32]


def test_convert_luna16_builds_a_datalist(tmp_path: Path) -> None:
    import numpy as np

    from medsnowball.core import ImageGeometry
    from medsnowball.io import write_image

    imgs = tmp_path / "subset0"
    geom = ImageGeometry((8, 16, 16), (2.0, 1.0, 1.0), (-8.0, -8.0, -8.0))
    for uid in ("1.2.3", "1.2.4"):
        write_image(np.full((8, 16, 16), -800, np.int16), imgs / f"{uid}.mhd", geom)
    ann = tmp_path / "annotations.csv"
    ann.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1.5,-2,3,6.5\n")
    out = tmp_path / "dl.json"
    res = runner.invoke(
        app,
        [
            "train",
            "convert-luna16",
            str(ann),
            str(tmp_path),
            "-o",
            str(out),
            "--validation-fraction",
            "0.5",
        ],
    )
    assert res.exit_code == 0, res.output
    dl = json.loads(out.read_text())
    items = dl["training"] + dl["validation"]
    assert len(dl["training"]) == 1
    assert len(dl["validation"]) == 1
    boxes = {i["case_id"]: i["box"] for i in items}
    assert boxes == {"1.2.3": [[1.5, -2.0, 3.0, 6.5, 6.5, 6.5]], "1.2.4": []}
    res = runner.invoke(
        app, ["train", "convert-luna16", str(tmp_path / "x.csv"), str(tmp_path), "-o", str(out)]
    )
    assert res.exit_code == 2
