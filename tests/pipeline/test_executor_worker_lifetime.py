"""LocalExecutor workers: they die with their parent; an unguarded script gets one clear error.

Both tests run a real Python script in a subprocess (``spawn`` workers re-import it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from medsnowball.pipeline.executors import EXIT_UNGUARDED_MAIN, exit_if_spawn_bootstrap

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return env


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
    return alive


def test_unguarded_script_gets_one_clear_error_and_no_case_is_charged(
    input_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            from pipeline_fake_steps import FAKE_PIPELINE
            from medsnowball.pipeline import Pipeline, run_batch

            pipe = Pipeline.from_dict(FAKE_PIPELINE, origin="fake")
            summary = run_batch({str(input_dir)!r}, {str(out)!r}, pipeline=pipe, workers=2)
            print("finished", summary.n_ok)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "finished" not in output
    assert "WorkerStartError" in output
    assert 'if __name__ == "__main__":' in output
    assert "workers=1" in output
    assert "bootstrapping phase" not in output  # multiprocessing's own traceback
    assert len(output.splitlines()) < 40, output
    for status in out.rglob("status.json"):
        text = status.read_text()
        assert "WorkerLost" not in text, text
        assert "memory" not in text, text
    summary = out / "summary.csv"
    if summary.exists():
        assert "WorkerLost" not in summary.read_text()


def test_bootstrap_exit_is_a_no_op_outside_a_starting_worker() -> None:
    exit_if_spawn_bootstrap()  # the test process is no starting worker: nothing happens
    assert EXIT_UNGUARDED_MAIN not in (0, 1)


@pytest.mark.parametrize("in_thread", [False, True], ids=["main-thread", "other-thread"])
def test_workers_exit_when_their_parent_is_killed(tmp_path: Path, in_thread: bool) -> None:
    """``in_thread``: the pool runs in a non-main thread, so only the watchdog guards it."""
    pids_file = tmp_path / "pids.txt"
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import os
            import threading
            import time

            from medsnowball.pipeline import LocalExecutor


            def sleeper(task):
                with open({str(pids_file)!r}, "a") as f:
                    f.write(f"{{os.getpid()}}\\n")
                time.sleep(120)
                return task


            def lost(task, reason):
                return reason


            def main():
                with LocalExecutor(2) as exe:
                    list(exe.run(sleeper, [1, 2], lost))


            if __name__ == "__main__":
                if {in_thread!r}:
                    t = threading.Thread(target=main)
                    t.start()
                    t.join()
                else:
                    main()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=_env(),
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        pids: list[int] = []
        while len(pids) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the workers never started (exit {proc.returncode})")
            time.sleep(0.1)
            if pids_file.exists():
                pids = [int(p) for p in pids_file.read_text().split()]
        assert _alive(pids) == pids
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, not its process group
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(pids) == [], "worker processes outlived their parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_every_documented_run_batch_call_is_under_a_main_guard() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    calls = 0
    for doc in docs:
        guarded = in_code = False
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_code, guarded = line.startswith("```python"), False
                continue
            if not in_code:
                continue
            if line.startswith('if __name__ == "__main__":'):
                guarded = True
            elif line.strip() and not line.startswith((" ", "#")):
                guarded = False  # back at the top level of the example
            if "run_batch(" in line:
                calls += 1
                assert guarded, f"{doc.name}:{n}: run_batch call without a main guard"
    assert calls >= 4  # README, pipeline.md and distributed.md examples were checked
