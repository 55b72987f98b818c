"""The batch output folder: checked before anything is written, locked while a batch runs.

:func:`check_output_folder` turns the usual problems (the path is a file, the folder cannot
be created, the folder or file system is not writable) into one :class:`ConfigError` that
names the folder and the fix, before any log file or output exists.

:class:`OutputLock` keeps two batches out of one folder: ``OUT/.medsnowball.lock`` is
created with ``O_CREAT | O_EXCL`` and holds ``pid host``. A second run finds it and stops
with a clear message; a lock left by a process that no longer runs on this host (a killed
batch) is taken over. A lock written on another host cannot be checked and is respected:
the message says which file to delete when no batch is running.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
from pathlib import Path
from types import TracebackType

from medsnowball.core.errors import ConfigError

__all__ = ["LOCK_NAME", "OutputLock", "check_output_folder"]

log = logging.getLogger(__name__)

LOCK_NAME = ".medsnowball.lock"


def _why(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or type(exc).__name__


def check_output_folder(out: Path) -> Path:
    """Make sure ``out`` is (or can become) a writable folder; create it.

    Args:
        out: The output folder.

    Returns:
        ``out``.

    Raises:
        ConfigError: ``out`` is an existing file, cannot be created or is not writable
            (the message names the folder, the cause and the fix).
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"output folder {out} exists and is not a folder; pass --out a folder path "
            "(new or existing)."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folder {out} ({_why(exc)}); choose a writable "
            "location for --out."
        ) from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-write-check-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"cannot write into the output folder {out} ({_why(exc)}); choose a writable "
            "location for --out or fix its permissions."
        ) from exc
    return out


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class OutputLock:
    """``OUT/.medsnowball.lock`` while a batch writes into ``OUT`` (re-entrant per process).

    Use as a context manager or with :meth:`acquire` / :meth:`release`. Acquiring a lock
    this process already holds (the CLI takes it, then ``run_batch`` again) is a no-op,
    and only the outer holder removes the file.

    Args:
        out: The output folder (must exist).
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self._owner = False

    def _mine(self) -> str:
        return f"{os.getpid()} {socket.gethostname()}"

    def _read(self) -> tuple[int, str] | None:
        try:
            text = self.path.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return None
        except OSError:
            return (-1, "")
        try:
            return int(text[0]), text[1] if len(text) > 1 else ""
        except (IndexError, ValueError):
            return (-1, "")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise ConfigError(
                f"cannot create the lock file {self.path} ({_why(exc)}); choose a writable "
                "location for --out."
            ) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self._mine() + "\n")
        return True

    def acquire(self) -> OutputLock:
        """Take the lock, taking over a stale one.

        Returns:
            ``self``.

        Raises:
            ConfigError: Another batch holds the lock (names its pid and host, and the
                file to delete when no batch is running).
        """
        for _ in range(3):
            if self._create():
                self._owner = True
                return self
            held = self._read()
            if held is None:
                continue  # removed meanwhile: try again
            pid, host = held
            if pid == os.getpid() and host == socket.gethostname():
                return self  # this process holds it already (re-entrant)
            same_host = host == socket.gethostname()
            if same_host and not _pid_alive(pid):
                log.warning(
                    "taking over the stale lock %s of process %d, which no longer runs",
                    self.path,
                    pid,
                )
                self.path.unlink(missing_ok=True)
                continue
            who = f"process {pid} on {host or 'an unknown host'}" if pid > 0 else "a lock"
            raise ConfigError(
                f"the output folder {self.path.parent} is in use by another medsnowball run "
                f"({who}; lock file {self.path}). Wait for it to finish or pass another "
                "--out; if no run is active (e.g. it ran on another machine and was "
                "killed), delete the lock file."
            )
        raise ConfigError(
            f"could not take the lock {self.path} (it keeps changing); another medsnowball "
            "run is starting in the same output folder: pass another --out."
        )

    def release(self) -> None:
        """Remove the lock file when this holder created it and it is still ours."""
        if not self._owner:
            return
        self._owner = False
        held = self._read()
        if held is not None and held[0] == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
