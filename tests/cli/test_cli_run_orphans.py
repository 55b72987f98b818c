"""``medsnowball run -j 2``: killing the parent with SIGKILL leaves no worker behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cli_helpers import copy_tree


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The pool's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for child in parent.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(child.cmdline())
            if "--multiprocessing-fork" in cmd and "resource_tracker" not in cmd:
                found.append(child)
    return found


def _alive(procs: list[psutil.Process]) -> list[int]:
    alive = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
    return alive


def test_kill_9_of_the_parent_ends_its_workers(messy_dir: Path, tmp_path: Path) -> None:
    inputs = copy_tree(messy_dir, tmp_path / "in")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medsnowball.cli", "run", str(inputs), "-o", str(out)]
    proc = subprocess.Popen(
        [*cmd, "-j", "2", "--formats", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 180
        workers: list[psutil.Process] = []
        while len(workers) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"two workers never ran (exit {proc.returncode})")
            time.sleep(0.1)
            workers = _workers(parent)
        time.sleep(2.0)  # let them import and start on their cases
        if proc.poll() is not None:
            pytest.fail("the batch finished before it could be killed")
        assert len(_alive(workers)) == 2
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as a user or OOM killer would
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(workers) == [], "worker processes outlived medsnowball run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
