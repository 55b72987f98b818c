"""``python -m medsnowball.cli`` (same as the ``medsnowball`` console script)."""

from __future__ import annotations

from medsnowball.cli.app import main

if __name__ == "__main__":
    main()
