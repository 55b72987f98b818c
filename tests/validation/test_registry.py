"""The held-out registry, and the training entry points that must consult it."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from medsnowball.core.errors import MedsnowballError
from medsnowball.detection import fit_scorer
from medsnowball.training import datalist, recipes
from medsnowball.validation import registry
from medsnowball.validation.registry import HeldOutDataError, refuse_heldout

LUNA_PATCH = "/data/ext/tomas-janicek/luna16/test_data/cache/case_108:362:377.npz"
TS_REPORT = "/data/ext/wasserth/TotalSegmentator/tests/reference_files/example_ct_sm_report.nii.gz"


def test_error_is_a_medsnowball_value_error() -> None:
    assert issubclass(HeldOutDataError, MedsnowballError)
    assert issubclass(HeldOutDataError, ValueError)


def test_constants() -> None:
    assert registry.HELDOUT_STYLES == ("style_b",)
    assert registry.HELDOUT_SHAPE_SOURCES == ("lidc",)
    assert registry.STYLE_B_SEEDS.start == 90000
    assert len(registry.RESERVED_SOURCES) == 2


def test_heldout_seeds_are_clear_of_every_seed_used_for_training_or_tuning() -> None:
    used = [
        *range(0, 1000),  # tests
        *fit_scorer.TRAIN_SEEDS,  # 7000-7295
        *fit_scorer.CALIBRATION_SEEDS,  # 7100-7115
        *range(recipes.DEFAULT_SEED, recipes.DEFAULT_SEED + 48),  # 10000-10047
        *range(
            recipes.DEFAULT_SEED + recipes.ENRICHED_SEED_OFFSET,
            recipes.DEFAULT_SEED + recipes.ENRICHED_SEED_OFFSET + recipes.N_ENRICHED,
        ),  # 10100-10147
        *range(20000, 20020),  # pipeline threshold tuning
        *range(30000, 30200),  # benchmarks/bench_cad.py
        *range(31000, 31200),  # benchmarks/bench_models.py
    ]
    refuse_heldout(seeds=used)  # accepted: nothing raised
    assert not any(registry.heldout_seed_range(s) for s in used)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"seeds": [10000, 90000]}, "seed 90000"),
        ({"seeds": [99999]}, "seed 99999"),
        ({"style": "style_b"}, "'style_b'"),
        ({"shape_source": "lidc"}, "'lidc'"),
        ({"paths": ["/data/train/a.nii.gz", LUNA_PATCH]}, "tomas-janicek/luna16/test_data"),
        ({"paths": [TS_REPORT]}, "example_ct_sm_report"),
    ],
)
def test_refuse_heldout_names_the_item(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(HeldOutDataError, match="reserved for independent evaluation") as exc:
        refuse_heldout(**kwargs)  # type: ignore[arg-type]
    assert named in str(exc.value)


@pytest.mark.parametrize(
    "path",
    [
        LUNA_PATCH,
        "/work/.mirror/tomas-janicek+luna16/test_data/cache/present_candidates.csv",
        "C:\\ext\\luna16-main\\test_data\\cache\\x.npz",
        "TotalSegmentator/tests/reference_files/lung_nodules_report.nii.gz",
        "/x/totalsegmentator-master/tests/reference_files/example_ct_report",
    ],
)
def test_reserved_paths(path: str) -> None:
    assert registry.reserved_source(path) is not None


@pytest.mark.parametrize(
    "path",
    [
        "/data/luna16/subset0/1.3.6.1.4.1.14519.5.2.1.6279.6001.105756658031515062000744821260.mhd",
        "/data/TotalSegmentator/tests/reference_files/example_ct.nii.gz",
        "runs/train/images/synth10000.nii.gz",
    ],
)
def test_ordinary_paths_are_accepted(path: str) -> None:
    assert registry.reserved_source(path) is None
    refuse_heldout(paths=[path])


def test_require_heldout_seed() -> None:
    registry.require_heldout_seed(90000)
    registry.require_heldout_seed(91005)  # second benchmark arm
    with pytest.raises(HeldOutDataError, match="seed 10000"):
        registry.require_heldout_seed(10000)


# -- recipes ----------------------------------------------------------------------------


def test_recipe_refuses_heldout_seed(tmp_path: Path) -> None:
    with pytest.raises(HeldOutDataError, match="seed 90000"):
        recipes.train_shipped_models(tmp_path / "out", n_train=2, n_val=1, seed=90000)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_recipe_refuses_heldout_enriched_seed(tmp_path: Path) -> None:
    # training seeds 89900-89902 are fine; the enriched ones (seed + 100 = 90000..) are not
    with pytest.raises(HeldOutDataError, match="seed 90000"):
        recipes.train_shipped_models(tmp_path, n_train=2, n_val=1, seed=89900, n_enriched=2)


def test_synthetic_cases_refuses_heldout_seed() -> None:
    cases = recipes.synthetic_cases([10000, 95000], use_detector=False)
    with pytest.raises(HeldOutDataError, match="seed 95000"):
        next(cases)


# -- datalists --------------------------------------------------------------------------


def _write_datalist(path: Path, image: str) -> Path:
    path.write_text(json.dumps({"training": [{"image": image, "box": [], "label": []}]}))
    return path


def test_read_datalist_refuses_reserved_paths(tmp_path: Path) -> None:
    for image in (LUNA_PATCH, TS_REPORT):
        dl = _write_datalist(tmp_path / "dl.json", image)
        with pytest.raises(HeldOutDataError, match="cannot be used for training"):
            datalist.read_datalist(dl)


def test_read_datalist_accepts_ordinary_paths(tmp_path: Path) -> None:
    dl = _write_datalist(tmp_path / "dl.json", "images/synth10000.nii.gz")
    out = datalist.read_datalist(dl)
    assert out["training"][0]["image"].endswith("synth10000.nii.gz")


def test_luna16_converter_refuses_reserved_folder(tmp_path: Path) -> None:
    with pytest.raises(HeldOutDataError, match="tomas-janicek/luna16/test_data"):
        datalist.luna16_to_datalist(tmp_path / "annotations.csv", LUNA_PATCH.rsplit("/", 2)[0])


def test_synthetic_datalist_refuses_heldout_seed(tmp_path: Path) -> None:
    with pytest.raises(HeldOutDataError, match="seed 90000"):
        datalist.synthetic_to_datalist(tmp_path, n_cases=3, seed=89998)
    assert not (tmp_path / "images").exists()


def test_lidc_datalist_refuses_the_heldout_shape_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stand-in pylidc that imports: the conversion must stop at the registry
    fake = types.ModuleType("pylidc")
    utils = types.ModuleType("pylidc.utils")
    utils.consensus = lambda *a, **k: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pylidc", fake)
    monkeypatch.setitem(sys.modules, "pylidc.utils", utils)
    with pytest.raises(HeldOutDataError, match="'lidc'"):
        datalist.lidc_to_datalist(tmp_path)


# -- candidate scorer -------------------------------------------------------------------


def test_fit_scorer_refuses_heldout_seed(tmp_path: Path) -> None:
    with pytest.raises(HeldOutDataError, match="seed 90000"):
        fit_scorer.collect_case(90000, quick=True, cache=tmp_path)
    with pytest.raises(HeldOutDataError, match="seed 93000"):
        fit_scorer._collect_all([7000, 93000], quick=True, cache=tmp_path, jobs=1)
    assert not list(tmp_path.iterdir())
