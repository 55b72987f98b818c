"""The output folder is checked before a batch starts and locked while it runs (issue 13)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline import Pipeline, ProgressEvent, run_batch
from medsnowball.pipeline.outdir import LOCK_NAME, OutputLock, check_output_folder


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_an_existing_file_is_refused_before_anything_is_written(
    input_dir: Path, tmp_path: Path, fake_pipeline: Pipeline
) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"out exists and is not a folder; pass --out a folder"):
        run_batch([input_dir], out, pipeline=fake_pipeline, keep_names=True)
    assert out.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("err", "why"),
    [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")],
)
def test_an_unwritable_folder_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, why: str
) -> None:
    def refuse(*_: object, **__: object) -> tuple[int, str]:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ConfigError) as info:
        check_output_folder(tmp_path / "out")
    assert str(info.value) == (
        f"cannot write into the output folder {tmp_path / 'out'} ({why}); choose a writable "
        "location for --out or fix its permissions."
    )


def test_a_folder_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot create the output folder .*file/out"):
        check_output_folder(blocker / "out")


def test_the_lock_exists_while_the_batch_runs_and_is_removed_after(
    input_dir: Path, tmp_path: Path, fake_pipeline: Pipeline
) -> None:
    out = tmp_path / "out"
    seen: list[str] = []

    def progress(event: ProgressEvent) -> None:
        seen.append((out / LOCK_NAME).read_text())

    run_batch([input_dir], out, pipeline=fake_pipeline, progress=progress, keep_names=True)
    assert seen
    assert set(seen) == {f"{os.getpid()} {socket.gethostname()}\n"}
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("host", ["this", "other"])
def test_a_second_run_into_a_locked_folder_is_refused(
    input_dir: Path, tmp_path: Path, fake_pipeline: Pipeline, host: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = os.getppid() if host == "this" else _dead_pid()  # alive here / not checkable
    name = socket.gethostname() if host == "this" else "elsewhere.example"
    (out / LOCK_NAME).write_text(f"{holder} {name}\n")
    with pytest.raises(ConfigError) as info:
        run_batch([input_dir], out, pipeline=fake_pipeline, keep_names=True)
    message = str(info.value)
    assert f"is in use by another medsnowball run (process {holder} on {name}" in message
    assert "Wait for it to finish or pass another --out" in message
    assert "delete the lock file" in message
    assert (out / LOCK_NAME).read_text() == f"{holder} {name}\n", "the lock is left alone"
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME], "nothing was written"


def test_a_stale_lock_of_a_dead_process_is_taken_over(
    input_dir: Path, tmp_path: Path, fake_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    (out / LOCK_NAME).write_text(f"{dead} {socket.gethostname()}\n")
    with caplog.at_level(logging.WARNING, logger="medsnowball"):
        summary = run_batch([input_dir], out, pipeline=fake_pipeline, keep_names=True)
    assert summary.n_ok == 2
    assert f"taking over the stale lock {out / LOCK_NAME} of process {dead}" in caplog.text
    assert not (out / LOCK_NAME).exists()


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    with OutputLock(tmp_path) as outer:
        with OutputLock(tmp_path):
            pass
        assert (tmp_path / LOCK_NAME).exists(), "the inner holder leaves the outer's lock"
        assert outer.path == tmp_path / LOCK_NAME
    assert not (tmp_path / LOCK_NAME).exists()
