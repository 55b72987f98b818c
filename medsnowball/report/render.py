"""Key images of a case, drawn with matplotlib (Agg; no pyplot, no global state).

Display conventions (radiological): axial images show the patient's right on the
viewer's left and anterior at the top; coronal images show the head at the top and the
patient's right on the left. Arrays whose direction cosines point the other way along
an axis are flipped for display (:class:`CaseView`); pixel aspect follows the spacing.
Windowing: lung window, level -600 HU, width 1500 HU.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsnowball.core.findings import Nodule
from medsnowball.core.volume import CTVolume

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LUNG_WINDOW_LEVEL = -600.0
LUNG_WINDOW_WIDTH = 1500.0
PNG_DPI = 90
#: Half-width of the zoomed patch: at least this many mm, or 1.5 nodule diameters.
ZOOM_MIN_HALF_MM = 15.0
CONTOUR_COLOR = "#ff3030"
MARK_COLOR = "#ffd21f"
LUNG_COLOR = "#35c4ff"


def _vmin_vmax() -> tuple[float, float]:
    return (
        LUNG_WINDOW_LEVEL - LUNG_WINDOW_WIDTH / 2.0,
        LUNG_WINDOW_LEVEL + LUNG_WINDOW_WIDTH / 2.0,
    )


@dataclass(frozen=True)
class NodulePlacement:
    """Where a nodule is drawn: its axial slice and centre in display indices (z, y, x)."""

    slice_index: int
    center_zyx: tuple[float, float, float]
    has_mask: bool


class CaseView:
    """A CT (and optional label maps) flipped into display orientation.

    Args:
        volume: The CT.
        lung_labels: Optional uint8 labels ``(z, y, x)`` on the CT grid (1 right, 2 left).
        nodule_labels: Optional instance labels ``(z, y, x)`` (value = ``Nodule.id``).
    """

    def __init__(
        self,
        volume: CTVolume,
        lung_labels: NDArray[Any] | None = None,
        nodule_labels: NDArray[Any] | None = None,
    ) -> None:
        direction = np.asarray(volume.geometry.direction)
        # flip index axis (z, y, x) when it points against +z, +y, +x (LPS) respectively
        self.flips: tuple[bool, bool, bool] = (
            bool(direction[2, 2] < 0),
            bool(direction[1, 1] < 0),
            bool(direction[0, 0] < 0),
        )
        axes = tuple(a for a, f in enumerate(self.flips) if f)
        self.geometry = volume.geometry
        self.shape_zyx = volume.geometry.shape_zyx
        self.spacing_zyx = volume.geometry.spacing_zyx
        self.hu: NDArray[Any] = np.flip(np.asarray(volume.array), axes) if axes else volume.array
        self.lungs = self._flip(lung_labels, axes)
        self.nodules = self._flip(nodule_labels, axes)
        self._boxes: list[Any] | None = None

    @staticmethod
    def _flip(labels: NDArray[Any] | None, axes: tuple[int, ...]) -> NDArray[Any] | None:
        if labels is None:
            return None
        return np.flip(np.asarray(labels), axes) if axes else np.asarray(labels)

    def to_view(self, zyx: ArrayLike) -> tuple[float, float, float]:
        """Map a (fractional) grid index (z, y, x) to display indices."""
        values = np.asarray(zyx, dtype=np.float64).reshape(3)
        out = [
            (n - 1 - float(v)) if flip else float(v)
            for v, n, flip in zip(values, self.shape_zyx, self.flips, strict=True)
        ]
        return (out[0], out[1], out[2])

    def _bounding_boxes(self) -> list[Any]:
        if self._boxes is None:
            from scipy import ndimage

            self._boxes = [] if self.nodules is None else ndimage.find_objects(self.nodules)
        return self._boxes

    def placement(self, nodule: Nodule) -> NodulePlacement:
        """Axial slice of largest mask area (or the centre slice) and the display centre."""
        center = self.to_view(self.geometry.world_to_index(nodule.center_lps))
        nz = self.shape_zyx[0]
        boxes = self._bounding_boxes()
        box = boxes[nodule.id - 1] if 0 < nodule.id <= len(boxes) else None
        if self.nodules is not None and box is not None:
            patch = self.nodules[box] == nodule.id
            areas = patch.reshape(patch.shape[0], -1).sum(axis=1)
            k = int(box[0].start + int(np.argmax(areas)))
            return NodulePlacement(k, center, True)
        k = int(np.clip(np.rint(center[0]), 0, nz - 1))
        return NodulePlacement(k, center, False)

    # coordinates in mm of the display grid (for extents and contours)
    def axial_extent(self) -> tuple[float, float, float, float]:
        """``imshow`` extent of an axial slice in mm: (left, right, bottom, top)."""
        _, ny, nx = self.shape_zyx
        _, sy, sx = self.spacing_zyx
        return (-0.5 * sx, (nx - 0.5) * sx, (ny - 0.5) * sy, -0.5 * sy)

    def coronal_extent(self) -> tuple[float, float, float, float]:
        """``imshow`` extent of a coronal slice in mm (origin lower: head at the top)."""
        nz, _, nx = self.shape_zyx
        sz, _, sx = self.spacing_zyx
        return (-0.5 * sx, (nx - 0.5) * sx, -0.5 * sz, (nz - 0.5) * sz)

    def overview_plane(self) -> str:
        """``"coronal"``, or ``"axial"`` when the scan covers less than 30 % of its width in z."""
        nz, _, nx = self.shape_zyx
        sz, _, sx = self.spacing_zyx
        return "coronal" if nz * sz >= 0.3 * nx * sx else "axial"

    def axial_index(self) -> int:
        """Display slice (z index) of an axial overview: most lung voxels, else the middle."""
        if self.lungs is not None:
            counts = np.count_nonzero(np.asarray(self.lungs).reshape(self.shape_zyx[0], -1), axis=1)
            if counts.any():
                return int(np.argmax(counts))
        return self.shape_zyx[0] // 2

    def coronal_index(self) -> int:
        """Display row (y index) of the overview: the lungs' centroid, else the middle."""
        ny = self.shape_zyx[1]
        if self.lungs is not None:
            rows = np.nonzero(np.asarray(self.lungs).any(axis=(0, 2)))[0]
            if rows.size:
                return int(np.rint(rows.mean()))
        return ny // 2


def _style_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("black")
    for spine in ax.spines.values():
        spine.set_visible(False)


def _orientation_letters(ax: Axes) -> None:
    """Mark the patient's right (viewer's left) and left in the top corners."""
    for x, letter, align in ((0.01, "R", "left"), (0.99, "L", "right")):
        ax.text(
            x, 0.99, letter, color="white", fontsize=8, ha=align, va="top", transform=ax.transAxes
        )


def draw_nodule_axes(ax_full: Axes, ax_zoom: Axes, view: CaseView, nodule: Nodule) -> None:
    """Draw a nodule's axial slice with contour (``ax_full``) and a zoomed patch (``ax_zoom``).

    Args:
        ax_full: Axes for the whole axial slice, with the zoom region outlined.
        ax_zoom: Axes for the zoomed patch.
        view: The case in display orientation.
        nodule: The nodule; its mask comes from ``view.nodules`` (value ``nodule.id``),
            else a circle of ``diameter_mm`` is drawn at its centre.
    """
    from matplotlib.patches import Circle, Rectangle

    place = view.placement(nodule)
    vmin, vmax = _vmin_vmax()
    _, sy, sx = view.spacing_zyx
    image = np.asarray(view.hu[place.slice_index], dtype=np.float32)
    extent = view.axial_extent()
    cx, cy = place.center_zyx[2] * sx, place.center_zyx[1] * sy
    half = max(ZOOM_MIN_HALF_MM, 1.5 * float(nodule.diameter_mm))
    for ax in (ax_full, ax_zoom):
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
        _style_axes(ax)
        if place.has_mask and view.nodules is not None:
            j0 = max(int((cy - half) / sy) - 2, 0)
            j1 = min(int((cy + half) / sy) + 3, view.shape_zyx[1])
            i0 = max(int((cx - half) / sx) - 2, 0)
            i1 = min(int((cx + half) / sx) + 3, view.shape_zyx[2])
            mask = (view.nodules[place.slice_index, j0:j1, i0:i1] == nodule.id).astype(np.float32)
            if mask.any():
                xs = np.arange(i0, i1) * sx
                ys = np.arange(j0, j1) * sy
                ax.contour(xs, ys, mask, levels=[0.5], colors=CONTOUR_COLOR, linewidths=1.2)
        else:
            radius = max(float(nodule.diameter_mm) / 2.0, 1.0)
            ax.add_patch(
                Circle((cx, cy), radius, fill=False, edgecolor=CONTOUR_COLOR, linewidth=1.2)
            )
    ax_full.add_patch(
        Rectangle(
            (cx - half, cy - half), 2 * half, 2 * half, fill=False, edgecolor=MARK_COLOR, lw=0.8
        )
    )
    ax_full.set_xlim(extent[0], extent[1])
    ax_full.set_ylim(extent[2], extent[3])
    ax_full.set_title(
        f"Nodule {nodule.id}: axial slice {place.slice_index + 1}/{view.shape_zyx[0]}",
        fontsize=9,
    )
    ax_zoom.set_xlim(cx - half, cx + half)
    ax_zoom.set_ylim(cy + half, cy - half)
    ax_zoom.set_title(
        f"zoom {2 * half:.0f} mm, {nodule.diameter_mm:.1f} mm mean diameter", fontsize=9
    )
    bar = 10.0
    x0, y0 = cx + half - bar - 0.1 * half, cy + half - 0.1 * half
    ax_zoom.plot([x0, x0 + bar], [y0, y0], color="white", linewidth=2)
    ax_zoom.text(x0 + bar / 2, y0 - 0.04 * half, "10 mm", color="white", fontsize=7, ha="center")
    _orientation_letters(ax_full)


def draw_overview_axes(ax: Axes, view: CaseView, nodules: Sequence[Nodule]) -> None:
    """Draw an overview slice through the lungs with every nodule marked and numbered.

    Coronal (through the lungs' centre row) unless the scan is too short in z for a
    useful coronal image (:meth:`CaseView.overview_plane`), then axial (the slice with
    the most lung). Nodules off that slice are marked at their projected position.
    """
    from matplotlib.patches import Circle

    vmin, vmax = _vmin_vmax()
    sz, sy, sx = view.spacing_zyx
    plane = view.overview_plane()
    if plane == "coronal":
        index = view.coronal_index()
        image = np.asarray(view.hu[:, index, :], dtype=np.float32)
        lungs = None if view.lungs is None else np.asarray(view.lungs[:, index, :]) > 0
        extent, row_mm = view.coronal_extent(), sz
        origin: Literal["upper", "lower"] = "lower"
        count = view.shape_zyx[1]
        label = f"Coronal overview (row {index + 1}/{count})"
    else:
        index = view.axial_index()
        image = np.asarray(view.hu[index], dtype=np.float32)
        lungs = None if view.lungs is None else np.asarray(view.lungs[index]) > 0
        extent, row_mm, origin = view.axial_extent(), sy, "upper"
        count = view.shape_zyx[0]
        label = f"Axial overview (slice {index + 1}/{count})"
    ax.imshow(
        image,
        cmap="gray",
        vmin=vmin,
        vmax=vmax,
        extent=extent,
        origin=origin,
        interpolation="nearest",
    )
    _style_axes(ax)
    if lungs is not None and lungs.any():
        xs = np.arange(lungs.shape[1]) * sx
        rows = np.arange(lungs.shape[0]) * row_mm
        ax.contour(
            xs, rows, lungs.astype(np.float32), levels=[0.5], colors=LUNG_COLOR, linewidths=0.6
        )
    for nodule in nodules:
        kz, jy, ix = view.to_view(view.geometry.world_to_index(nodule.center_lps))
        x, y = ix * sx, (kz * sz if plane == "coronal" else jy * sy)
        radius = max(float(nodule.diameter_mm) / 2.0 + 3.0, 5.0)
        ax.add_patch(Circle((x, y), radius, fill=False, edgecolor=MARK_COLOR, linewidth=1.2))
        dy = radius * 0.8 if plane == "coronal" else -radius * 0.8
        ax.text(
            x + radius * 0.8,
            y + dy,
            str(nodule.id),
            color=MARK_COLOR,
            fontsize=9,
            fontweight="bold",
        )
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(f"{label}; nodules marked at their projected position", fontsize=9)
    _orientation_letters(ax)


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), facecolor="white")


def figure_png(fig: Figure, dpi: int = PNG_DPI) -> bytes:
    """Render a figure to PNG bytes (no timestamp metadata, so output is reproducible)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def nodule_figure(view: CaseView, nodule: Nodule) -> Figure:
    """A two-panel figure: axial slice with contour, and the zoomed patch."""
    fig = _new_figure(8.0, 4.1)
    ax_full = fig.add_axes((0.01, 0.02, 0.48, 0.88))
    ax_zoom = fig.add_axes((0.51, 0.02, 0.48, 0.88))
    draw_nodule_axes(ax_full, ax_zoom, view, nodule)
    return fig


def overview_figure(view: CaseView, nodules: Sequence[Nodule]) -> Figure:
    """The overview figure; its height follows the image's aspect ratio."""
    nz, ny, nx = view.shape_zyx
    sz, sy, sx = view.spacing_zyx
    tall = nz * sz if view.overview_plane() == "coronal" else ny * sy
    aspect = tall / max(nx * sx, 1e-6)
    width = 6.0
    height = float(np.clip(width * aspect, 2.5, 9.0)) + 0.4
    fig = _new_figure(width, height)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.4 / height))
    draw_overview_axes(ax, view, nodules)
    return fig


@dataclass(frozen=True)
class ReportImages:
    """PNG images of a case: one per nodule (by id) and the overview."""

    nodules: dict[int, bytes]
    overview: bytes


def render_images(
    view: CaseView,
    nodules: Sequence[Nodule],
    *,
    overview_nodules: Sequence[Nodule] | None = None,
) -> ReportImages:
    """Render the per-nodule figures and the overview as PNG bytes.

    Args:
        view: The case in display orientation.
        nodules: Nodules that get their own figure.
        overview_nodules: Nodules marked on the overview (default: ``nodules``).

    Returns:
        The PNG images.
    """
    per_nodule = {n.id: figure_png(nodule_figure(view, n)) for n in nodules}
    marked = nodules if overview_nodules is None else overview_nodules
    return ReportImages(per_nodule, figure_png(overview_figure(view, marked)))


__all__ = [
    "LUNG_WINDOW_LEVEL",
    "LUNG_WINDOW_WIDTH",
    "CaseView",
    "NodulePlacement",
    "ReportImages",
    "draw_nodule_axes",
    "draw_overview_axes",
    "figure_png",
    "nodule_figure",
    "overview_figure",
    "render_images",
]
