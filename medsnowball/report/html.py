"""``report.html``: a self-contained HTML report (images inline as base64 PNG).

Rendered with jinja2 from ``templates/report.html.j2`` with autoescaping on for every
value, so DICOM strings such as a PatientName of ``<script>alert(1)</script>`` appear as
text. No external resources (scripts, fonts, style sheets) are referenced.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from medsnowball.report.context import ReportContext
from medsnowball.report.render import ReportImages

TEMPLATE_NAME = "report.html.j2"
#: Table columns right-aligned as numbers (0-based, see context.TABLE_HEADER).
NUMERIC_COLUMNS = frozenset({0, 3, 5, 6, 7, 8})


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("medsnowball.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(context: ReportContext, images: ReportImages, *, omitted_images: int = 0) -> str:
    """Render the HTML report.

    Args:
        context: What to show (see :func:`medsnowball.report.context.build_context`).
        images: PNG images: the overview and one per nodule id in ``context.nodule_ids``.
        omitted_images: Number of nodules whose image was left out (shown as a note).

    Returns:
        The complete HTML document.
    """
    template = _environment().get_template(TEMPLATE_NAME)
    return str(
        template.render(
            c=context,
            overview_png=base64.b64encode(images.overview).decode("ascii"),
            nodule_png={
                nid: base64.b64encode(png).decode("ascii") for nid, png in images.nodules.items()
            },
            numeric_columns=NUMERIC_COLUMNS,
            omitted_images=omitted_images,
        )
    )


__all__ = ["NUMERIC_COLUMNS", "TEMPLATE_NAME", "render_html"]
