"""Fixtures of the CLI tests: a messy input folder (see cli_helpers.build_messy_dir).

Two DICOM studies with nodules (one also holds a 2-slice localizer), junk files and a
third study whose files are truncated (a corrupt series). Small phantoms (48x80x80) keep
the whole CAD pipeline at a few seconds per case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import build_messy_dir


@pytest.fixture(scope="session")
def messy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The messy input tree (session-scoped and read-only)."""
    return build_messy_dir(tmp_path_factory.mktemp("messy"))


@pytest.fixture(scope="session")
def tree_digest() -> Callable[[Path], dict[str, str]]:
    """SHA-256 of every file under a folder."""

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    return digest
