"""``medsnowball run --executor dask``: the CLI wiring, statuses and exit code."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from medsnowball.cli import app

runner = CliRunner()


def test_cli_runs_a_batch_on_a_local_dask_cluster(
    tmp_path: Path, phantom_inputs: list[Path]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for src in phantom_inputs[:2]:
        (inputs / src.name).symlink_to(src)
    out = tmp_path / "out"
    args = ["run", str(inputs), "--out", str(out), "--formats", "json,csv", "--quiet"]
    args.append("--keep-names")  # case ids p1, p2 from the file names
    result = runner.invoke(app, [*args, "--executor", "dask", "--workers", "2"])
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["case_id"] for r in rows) == ["p1", "p2"]
    statuses = {r["status"] for r in rows}
    assert statuses <= {"ok", "needs_review"}, rows  # no case may fail
    # Exit codes (docs/cli.md): 0 every case ok, 3 none failed but some need review.
    assert result.exit_code == (0 if statuses == {"ok"} else 3), result.output

    bad = runner.invoke(app, [*args, "--executor", "local", "--scheduler", "tcp://x:8786"])
    assert bad.exit_code == 2
    assert "--scheduler needs --executor dask" in bad.output
