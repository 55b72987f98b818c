"""``medsnowball convert``: write a CT series (DICOM or other) as NIfTI / MetaImage / NRRD."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsnowball.cli.common import err_console, fail

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the app."""

    @app.command("convert")
    def convert(
        source: Annotated[
            Path,
            typer.Argument(exists=True, help="DICOM folder or image file.", show_default=False),
        ],
        output: Annotated[
            Path,
            typer.Argument(
                help="Output image: .nii.gz, .nii, .mha, .mhd or .nrrd.", show_default=False
            ),
        ],
        case: Annotated[
            str | None,
            typer.Option(
                "--case",
                help="Case id to convert when SOURCE holds several (see 'medsnowball info').",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Convert one CT series to an image file (world geometry kept, LPS -> RAS for NIfTI).

        With several series under SOURCE, the one the selection rules prefer is written
        unless --case names another.
        """
        from medsnowball.core.errors import MedsnowballError
        from medsnowball.io import find_cases, image_suffix, load_case, write_image

        if image_suffix(output) is None:
            fail(f"{output}: unknown image suffix; use .nii.gz, .nii, .mha, .mhd or .nrrd.")
        try:
            found = find_cases([str(source)])
            if not found.cases:
                fail(f"{source}: no CT series found (run 'medsnowball info {source}').")
            if case is not None:
                chosen = [c for c in found.cases if c.case_id == case]
                if not chosen:
                    ids = ", ".join(c.case_id for c in found.cases)
                    fail(f"--case {case}: not found under {source}; cases: {ids}.")
                selected = chosen[0]
            else:
                selected = found.best() or found.cases[0]
                if len(found.cases) > 1:
                    err_console.print(
                        f"{len(found.cases)} cases under {source}; converting {selected.case_id} "
                        "(choose another with --case).",
                        highlight=False,
                    )
            volume = load_case(selected)
            write_image(volume, output)
        except MedsnowballError as exc:
            fail(f"{type(exc).__name__}: {exc}", code=1)
        z, y, x = volume.shape
        sz, sy, sx = volume.spacing_zyx
        err_console.print(
            f"wrote {output} ({x}x{y}x{z} voxels, {sx:.3g}x{sy:.3g}x{sz:.3g} mm)", highlight=False
        )
