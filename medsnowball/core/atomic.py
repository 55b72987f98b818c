"""Atomic file output: write to a temporary name in the same folder, then rename.

A process killed mid-write leaves at most a ``.tmp-*`` file behind, never a truncated
output under the final name, so ``--resume`` can trust every file it finds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; outputs get the usual
# permissions (0666 minus the umask) instead. Read once, at import, single-threaded.
_FILE_MODE = 0o666 & ~_process_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary name keeps the final suffixes (``x.nii.gz`` -> ``.tmp-abc-x.nii.gz``) so
    libraries that pick a format from the extension still work.

    Args:
        path: Final destination. Its parent folder is created if missing.

    Yields:
        The temporary path to write to. If the block raises, it is removed and the
        destination is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix="-" + final.name, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_dir():
            raise IsADirectoryError(f"atomic_path expected a file at {tmp}, found a folder.")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, final)
    finally:
        if tmp.exists() and tmp.is_file():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]
