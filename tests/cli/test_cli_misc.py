"""CLI: start-up cost, usage errors (exit 2), info, convert, demo, version, progress."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from medsnowball.cli import app
from medsnowball.pipeline import Pipeline

runner = CliRunner()


def _flat(text: str) -> str:
    """Output without rich's box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").split())


HEAVY = ("torch", "monai", "scipy", "SimpleITK", "skimage", "pydicom", "matplotlib", "highdicom")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, medsnowball.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at CLI start-up: {out.stdout.strip()}"


def test_help_starts_within_one_second() -> None:
    best = min(_timed([sys.executable, "-m", "medsnowball.cli", "--help"]) for _ in range(3))
    assert best <= 1.0, f"medsnowball --help took {best:.2f} s"


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "run" in out.stdout
    assert "convert" in out.stdout
    return time.perf_counter() - t0


def test_version() -> None:
    from medsnowball import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"medsnowball {__version__}"


@pytest.fixture
def one_nifti(tmp_path: Path) -> Path:
    from medsnowball.io import write_image
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=(40, 72, 72),
            spacing_zyx=(2.5, 1.8, 1.8),
            seed=5,
            nodules=(NoduleSpec(9.0, "solid", "parenchymal"),),
        )
    )
    folder = tmp_path / "data"
    write_image(ph.volume, folder / "phantom5.nii.gz")
    return folder


def test_usage_errors_exit_2(one_nifti: Path, tmp_path: Path) -> None:
    bad = Pipeline.from_yaml("lung_nodule_screening").to_dict()
    bad["steps"][3]["config"]["max_candidatez"] = 10
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(
        Pipeline.from_yaml("lung_nodule_screening")
        .to_yaml()
        .replace("max_candidates:", "max_candidatez:")
    )
    out = str(tmp_path / "o")
    cases = {
        "steps[3].config.max_candidatez: unknown key; did you mean max_candidates?": [
            "run",
            str(one_nifti),
            "-o",
            out,
            "--pipeline",
            str(bad_yaml),
        ],
        "unknown format(s) xml": ["run", str(one_nifti), "-o", out, "--formats", "json,xml"],
        "--device: expected one of auto, cpu, cuda": [
            "run",
            str(one_nifti),
            "-o",
            out,
            "--device",
            "tpu",
        ],
        "--threshold: expected a number in [0, 1]": [
            "run",
            str(one_nifti),
            "-o",
            out,
            "--threshold",
            "2",
        ],
        "--workers: expected >= 1": ["run", str(one_nifti), "-o", out, "-j", "0"],
        "not a shipped pipeline name": ["run", str(one_nifti), "-o", out, "-p", "nope"],
        "does not exist": ["run", str(tmp_path / "missing"), "-o", out],
        "Missing option": ["run", str(one_nifti)],
    }
    for expected, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in _flat(result.output), (expected, result.output)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.txt").write_text("x")
    result = runner.invoke(app, ["run", str(empty), "-o", out])
    assert result.exit_code == 2
    assert "no CT case found" in result.output


def test_demo_on_a_data_folder_and_threshold(one_nifti: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(
        app, ["demo", "--out", str(out), "--data", str(one_nifti), "--formats", "json"]
    )
    assert result.exit_code == 3, result.output  # the small phantom needs review
    from medsnowball.io.selection import image_case_id

    case_id = image_case_id(one_nifti / "phantom5.nii.gz")  # pseudonymous: img_<hash>
    assert (out / case_id / "findings.json").is_file()
    assert (out / "summary.csv").read_text().splitlines()[1].startswith(f"{case_id},")
    high = tmp_path / "high"
    args = ["run", str(one_nifti), "-o", str(high), "--formats", "json", "--threshold", "1.0"]
    result = runner.invoke(app, [*args, "--keep-names"])
    assert result.exit_code == 3
    import json

    assert json.loads((high / "phantom5" / "findings.json").read_text())["nodules"] == [] or all(
        n["score"] >= 1.0
        for n in json.loads((high / "phantom5" / "findings.json").read_text())["nodules"]
    )


def test_info_lists_series_and_reasons(messy_dir: Path) -> None:
    result = runner.invoke(app, ["info", str(messy_dir), "--files"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "localizer" in text.lower()
    assert "3 case(s) selected from 4 series" in text
    assert "junk/image.dcm" in text
    assert "README.txt" in text
    assert "Doe" not in text
    js = runner.invoke(app, ["info", str(messy_dir), "--json"])
    import json

    rows = json.loads(js.stdout)["series"]
    assert sum(r["selected"] for r in rows) == 3
    assert len(rows) == 4


def test_convert_dicom_to_nifti_keeps_geometry(messy_dir: Path, tmp_path: Path) -> None:
    from medsnowball.io import find_cases, load_case, load_ct

    series = messy_dir / "study_b"
    out = tmp_path / "b.nii.gz"
    result = runner.invoke(app, ["convert", str(series), str(out)])
    assert result.exit_code == 0, result.output
    src = load_case(find_cases([series]).cases[0])
    back = load_ct(out)
    assert back.geometry == src.geometry
    assert np.allclose(back.array, src.array, atol=0.5)
    bad = runner.invoke(app, ["convert", str(series), str(tmp_path / "b.png")])
    assert bad.exit_code == 2
    assert "unknown image suffix" in bad.output
    multi = runner.invoke(
        app, ["convert", str(messy_dir), str(tmp_path / "m.nii.gz"), "--case", "nope"]
    )
    assert multi.exit_code == 2
    assert "--case nope: not found" in _flat(multi.output)


def test_progress_bar_counts_cases() -> None:
    from medsnowball.cli import progress as progress_mod
    from medsnowball.pipeline import CaseOutcome, ProgressEvent

    buf = io.StringIO()
    original = progress_mod.err_console
    progress_mod.err_console = Console(file=buf, force_terminal=True, width=100)
    try:
        with progress_mod.CaseProgress(enabled=True) as bar:
            bar(ProgressEvent(0, 3))
            bar(ProgressEvent(1, 3, CaseOutcome("a", "s", "u", "ok")))
            bar(ProgressEvent(2, 3, CaseOutcome("b", "s", "u", "failed", "X: y")))
            bar(ProgressEvent(3, 3, CaseOutcome("c", "s", "u", "ok", reused=True)))
    finally:
        progress_mod.err_console = original
    assert (bar.n_ok, bar.n_failed) == (1, 1)
    assert "3/3" in buf.getvalue()
