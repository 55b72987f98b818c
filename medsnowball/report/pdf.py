"""``report.pdf``: the HTML report's content as A4 pages, drawn with matplotlib's PdfPages.

Pages, in order: a title page (case, assessment, guideline versions, the first rows of
the nodule table), continuation pages when the table is long, one page per nodule
(axial slice with contour, zoomed patch, measurements), and the coronal overview. So a
case with ``n`` nodules (``n <= TITLE_TABLE_ROWS``) has ``n + 2`` pages.

All text is drawn with math-text parsing off, so DICOM strings containing ``$`` are
shown literally. The file carries no creation date, so it is reproducible.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medsnowball.core.atomic import atomic_path
from medsnowball.core.findings import Nodule
from medsnowball.report.context import ReportContext
from medsnowball.report.render import CaseView, draw_nodule_axes, draw_overview_axes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

A4_INCHES = (8.27, 11.69)
TITLE_TABLE_ROWS = 20
CONTINUATION_TABLE_ROWS = 45
WRAP_CHARS = 105
QUALITY_COLOR = "#a93226"


def expected_page_count(n_table_rows: int, n_nodule_pages: int) -> int:
    """Pages :func:`write_pdf` produces for a table and a number of nodule pages."""
    extra = max(0, math.ceil((n_table_rows - TITLE_TABLE_ROWS) / CONTINUATION_TABLE_ROWS))
    return 1 + extra + n_nodule_pages + 1


class _TextCursor:
    """Writes lines of text top-down on a figure (figure coordinates)."""

    def __init__(self, fig: Figure, top: float = 0.955, left: float = 0.06) -> None:
        self.fig, self.y, self.left = fig, top, left

    def line(self, text: str, size: float = 9.0, bold: bool = False, color: str = "black") -> None:
        for part in textwrap.wrap(text, WRAP_CHARS) or [""]:
            self.fig.text(
                self.left,
                self.y,
                part,
                fontsize=size,
                fontweight="bold" if bold else "normal",
                color=color,
                va="top",
                parse_math=False,
            )
            self.y -= size * 1.45 / 72.0 / A4_INCHES[1]

    def gap(self, points: float = 6.0) -> None:
        self.y -= points / 72.0 / A4_INCHES[1]


def _new_page() -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=A4_INCHES, facecolor="white")


#: Largest font size (pt) of the nodule table; it shrinks to fit the page width.
TABLE_MAX_FONT_PT = 6.5
#: Smallest font size (pt) of the nodule table; below it cells wrap more instead.
TABLE_MIN_FONT_PT = 4.5
#: Width of the table in figure coordinates (left margin :data:`TABLE_LEFT`).
TABLE_WIDTH = 0.92
TABLE_LEFT = 0.04
#: Longest line (characters) of a body cell / header cell before it wraps.
_CELL_WRAP_CHARS = 18
_HEADER_WRAP_CHARS = 10
#: Average glyph width of DejaVu Sans as a fraction of the font size, plus cell padding.
_CHAR_EM = 0.62
_CELL_PAD_CHARS = 1.6


def _wrap_cell(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(str(text), width, break_on_hyphens=False) or [""])


def table_layout(
    rows: Sequence[Sequence[str]], header: Sequence[str], width_pt: float
) -> tuple[list[list[str]], list[str], list[float], float]:
    """Wrap and size the nodule table so that it fits ``width_pt`` points.

    Long cells wrap at :data:`_CELL_WRAP_CHARS` characters (headers at
    :data:`_HEADER_WRAP_CHARS`), column widths are proportional to each column's longest
    line, and the font shrinks from :data:`TABLE_MAX_FONT_PT` (to at least
    :data:`TABLE_MIN_FONT_PT`) until the columns fit; if even that is too wide, the cells
    wrap tighter.

    Args:
        rows: Table body, one sequence of strings per row.
        header: Column titles.
        width_pt: Width available for the table, in points.

    Returns:
        ``(wrapped_rows, wrapped_header, column_widths, font_pt)``; the column widths are
        fractions of the table width and sum to 1.
    """
    cell_wrap, head_wrap = _CELL_WRAP_CHARS, _HEADER_WRAP_CHARS
    while True:
        body = [[_wrap_cell(c, cell_wrap) for c in r] for r in rows]
        head = [_wrap_cell(h, head_wrap) for h in header]
        chars = []
        for j, h in enumerate(head):
            lines = [len(line) for line in h.split("\n")]
            for r in body:
                if j < len(r):
                    lines += [len(line) for line in r[j].split("\n")]
            chars.append(max(lines) + _CELL_PAD_CHARS)
        total = float(sum(chars))
        font = min(TABLE_MAX_FONT_PT, width_pt / (total * _CHAR_EM))
        if font >= TABLE_MIN_FONT_PT or cell_wrap <= 6:
            break
        cell_wrap, head_wrap = cell_wrap - 2, max(6, head_wrap - 1)
    widths = [c / total for c in chars]
    return body, head, widths, max(font, TABLE_MIN_FONT_PT)


def _draw_table(
    fig: Figure, rows: Sequence[Sequence[str]], header: Sequence[str], top: float
) -> None:
    width_pt = TABLE_WIDTH * A4_INCHES[0] * 72.0
    body, head, widths, font = table_layout(rows, header, width_pt)
    lines = [max(c.count("\n") + 1 for c in r) if r else 1 for r in [head, *body]]
    line_h = font * 1.6 / 72.0 / A4_INCHES[1]
    heights = [n * line_h + 0.006 for n in lines]
    bottom = 0.05
    height = min(top - bottom, sum(heights))
    ax = fig.add_axes((TABLE_LEFT, top - height, TABLE_WIDTH, height))
    ax.axis("off")
    table = ax.table(
        cellText=body, colLabels=head, colWidths=widths, loc="upper left", cellLoc="left"
    )
    # a long table is squeezed to the page height: shrink its font by the same factor
    scale = height / sum(heights) if sum(heights) > 0 else 1.0
    font *= min(1.0, scale)
    table.auto_set_font_size(False)
    table.set_fontsize(font)
    for (row, col), cell in table.get_celld().items():
        cell.get_text().set_parse_math(False)
        cell.set_linewidth(0.3)
        cell.set_height(heights[row] * scale / height)
        # about half a character of padding on each side, as a fraction of the column width
        cell.PAD = 0.5 * font * _CHAR_EM / (widths[col] * width_pt)
        if row == 0:
            cell.set_facecolor("#eeeeee")
            cell.get_text().set_fontweight("bold")


def _title_page(context: ReportContext) -> Figure:
    fig = _new_page()
    cur = _TextCursor(fig)
    cur.line(context.title, size=16, bold=True)
    cur.gap(2)
    cur.line(context.disclaimer, size=9, bold=True, color="#8a4b00")
    cur.gap(8)
    if context.quality_flags:
        _quality_box(fig, cur, context)
    cur.line(f"Case: {context.case_id}", size=10, bold=True)
    if context.patient is not None:
        for label, value in context.patient:
            cur.line(f"{label}: {value}")
    cur.line(f"Study UID: {context.study_uid or '-'}")
    cur.line(f"Series UID: {context.series_uid or '-'}")
    cur.line(f"Source: {context.source}")
    cur.line(f"Image: {context.image_summary}")
    if context.acquisition:
        cur.line("; ".join(f"{label}: {value}" for label, value in context.acquisition))
    cur.line(f"Lung volumes: {context.lungs}")
    cur.gap(8)
    cur.line(
        f"Lung-RADS {context.lung_rads}"
        + (f" ({context.lung_rads_descriptor})" if context.lung_rads_descriptor else "")
        + f", most suspicious: {context.most_suspicious}",
        size=13,
        bold=True,
    )
    cur.line(f"Management: {context.lung_rads_management}")
    cur.line(f"Fleischner: {context.fleischner}")
    cur.line(context.fleischner_applicability, size=7.5, color="#444444")
    cur.line(
        f"Guidelines: {context.lung_rads_version} (baseline); {context.fleischner_version}",
        size=8,
    )
    for warning in context.warnings:
        cur.line(f"Warning: {warning}", size=8, color="#8a4b00")
    cur.gap(8)
    cur.line(f"Nodules ({len(context.table_rows)})", size=11, bold=True)
    if context.table_rows:
        _draw_table(fig, context.table_rows[:TITLE_TABLE_ROWS], context.table_header, cur.y - 0.01)
    else:
        cur.line("No nodules above the operating threshold.")
    _footer(fig, context, 1)
    return fig


def _quality_box(fig: Figure, cur: _TextCursor, context: ReportContext) -> None:
    """The quality flags in a red-framed box (drawn only when there are flags)."""
    from matplotlib.patches import Rectangle

    top = cur.y + 0.006
    cur.left += 0.015
    cur.line(context.quality_heading, size=11, bold=True, color=QUALITY_COLOR)
    for severity, code, message in context.quality_flags:
        colour = QUALITY_COLOR if severity == "review" else "#444444"
        cur.line(f"- {message} [{code}]", size=8.5, color=colour)
    cur.left -= 0.015
    bottom = cur.y + 0.002
    fig.add_artist(
        Rectangle(
            (cur.left - 0.01, bottom),
            0.90,
            top - bottom,
            transform=fig.transFigure,
            facecolor="#fdecea",
            edgecolor=QUALITY_COLOR,
            linewidth=1.5,
            zorder=-1,
        )
    )
    cur.gap(8)


def _footer(fig: Figure, context: ReportContext, page: int) -> None:
    fig.text(
        0.5,
        0.02,
        f"medsnowball {context.medsnowball_version} - {context.case_id} - page {page} - "
        "research software, not for clinical use",
        fontsize=7,
        ha="center",
        color="#666666",
        parse_math=False,
    )


def _nodule_page(context: ReportContext, view: CaseView, nodule: Nodule, page: int) -> Figure:
    fig = _new_page()
    cur = _TextCursor(fig)
    cur.line(context.nodule_captions.get(nodule.id, f"Nodule {nodule.id}"), size=13, bold=True)
    cur.gap(4)
    row = dict(zip(context.table_header, _row_for(context, nodule.id), strict=False))
    for key, value in row.items():
        if key != "#":
            cur.line(f"{key}: {value}", size=9)
    ax_full = fig.add_axes((0.04, 0.30, 0.45, 0.45))
    ax_zoom = fig.add_axes((0.51, 0.30, 0.45, 0.45))
    draw_nodule_axes(ax_full, ax_zoom, view, nodule)
    _footer(fig, context, page)
    return fig


def _row_for(context: ReportContext, nodule_id: int) -> tuple[str, ...]:
    for row in context.table_rows:
        if row and row[0] == str(nodule_id):
            return row
    return ()


def _overview_page(
    context: ReportContext, view: CaseView, nodules: Sequence[Nodule], page: int
) -> Figure:
    fig = _new_page()
    cur = _TextCursor(fig)
    cur.line("Coronal overview", size=13, bold=True)
    ax = fig.add_axes((0.05, 0.08, 0.90, 0.82))
    draw_overview_axes(ax, view, nodules)
    ax.set_aspect("equal", adjustable="box")
    _footer(fig, context, page)
    return fig


def write_pdf(
    path: str | os.PathLike[str],
    context: ReportContext,
    view: CaseView,
    nodules: Sequence[Nodule],
    *,
    nodule_pages: Sequence[Nodule] | None = None,
) -> int:
    """Write report.pdf atomically.

    Args:
        path: Destination.
        context: What to show (see :func:`medsnowball.report.context.build_context`).
        view: The CT and label maps in display orientation.
        nodules: All nodules (marked on the overview).
        nodule_pages: Nodules that get their own page (default: all of ``nodules``).

    Returns:
        The number of pages written.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    pages_for = list(nodules if nodule_pages is None else nodule_pages)
    count = 0
    with atomic_path(Path(path)) as tmp:
        metadata = {
            "Title": f"medsnowball report {context.case_id}",
            "Creator": f"medsnowball {context.medsnowball_version}",
            "Subject": "Research software, not for clinical use",
            "CreationDate": None,
        }
        with PdfPages(tmp, metadata=metadata) as pdf:
            pdf.savefig(_title_page(context))
            count += 1
            rest = context.table_rows[TITLE_TABLE_ROWS:]
            for start in range(0, len(rest), CONTINUATION_TABLE_ROWS):
                fig = _new_page()
                cur = _TextCursor(fig)
                cur.line("Nodules (continued)", size=11, bold=True)
                chunk = rest[start : start + CONTINUATION_TABLE_ROWS]
                _draw_table(fig, chunk, context.table_header, cur.y - 0.01)
                count += 1
                _footer(fig, context, count)
                pdf.savefig(fig)
            for nodule in pages_for:
                count += 1
                pdf.savefig(_nodule_page(context, view, nodule, count))
            count += 1
            pdf.savefig(_overview_page(context, view, nodules, count))
    return count


__all__ = [
    "CONTINUATION_TABLE_ROWS",
    "TABLE_MAX_FONT_PT",
    "TABLE_MIN_FONT_PT",
    "TITLE_TABLE_ROWS",
    "expected_page_count",
    "table_layout",
    "write_pdf",
]
