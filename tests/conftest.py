"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSNOWBALL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# Keep BLAS / torch from oversubscribing the 2 CI cores when pytest-xdist runs 2 workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder with the real scanner files (skips the test when it is not there)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _restore_medsnowball_logger() -> Iterator[None]:
    """Undo what a test's CLI call did to the ``medsnowball`` logger.

    ``setup_logging`` (every CLI command) installs a handler and stops propagation, so that
    without this fixture a later test's ``caplog`` sees nothing, depending on test order.
    A module-scoped fixture may have called the CLI before this runs: each test starts
    with propagation on.
    """
    logger = logging.getLogger("medsnowball")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.propagate = True
    yield
    for handler in logger.handlers:
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
