"""FROC plot (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from medsnowball.core.atomic import atomic_write_bytes
from medsnowball.evaluation.froc import FROCResult


def froc_png(result: FROCResult, title: str = "FROC") -> bytes:
    """Render a FROC curve as PNG bytes.

    The curve is drawn as a staircase on a log-scaled false-positives-per-scan axis
    (half the first to 1.5 times the last operating point); the operating points
    (LUNA16's seven by default) are marked with their sensitivities (and bootstrap
    intervals), and the CPM (with its confidence interval) is in the title.

    Args:
        result: The FROC result.
        title: Plot title prefix.

    Returns:
        The PNG file's bytes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    lo = min(result.fp_rates) / 2.0
    hi = max(result.fp_rates) * 1.5  # the curve beyond the last operating point is cut
    sens = np.nan_to_num(result.sensitivity, nan=0.0)
    fps = np.clip(result.fps, lo, None)
    ax.step(
        np.append(fps, hi), np.append(sens, sens[-1] if sens.size else 0.0), where="post", lw=1.5
    )
    op_s = np.nan_to_num(np.asarray(result.sensitivities, dtype=float), nan=0.0)
    ax.plot(result.fp_rates, op_s, "o", color="tab:red", label="operating points")
    if result.sensitivities_ci is not None:
        ci = np.asarray(result.sensitivities_ci, dtype=float)
        ax.vlines(result.fp_rates, ci[:, 0], ci[:, 1], color="tab:red", alpha=0.5)
    for f, s in zip(result.fp_rates, op_s, strict=True):
        ax.annotate(f"{s:.2f}", (f, s), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0.0, 1.1)
    ax.set_xticks(list(result.fp_rates))
    ax.set_xticklabels([f"{f:g}" for f in result.fp_rates])
    ax.set_xlabel("average false positives per scan")
    ax.set_ylabel("sensitivity")
    cpm_text = "n/a" if not np.isfinite(result.cpm) else f"{result.cpm:.3f}"
    if result.cpm_ci is not None:
        cpm_text += f" [{result.cpm_ci[0]:.3f}, {result.cpm_ci[1]:.3f}]"
    ax.set_title(
        f"{title}: CPM {cpm_text} ({result.n_scans} scans, {result.n_nodules} nodules)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_froc(result: FROCResult, path: str | os.PathLike[str], title: str = "FROC") -> Path:
    """Write the FROC plot of :func:`froc_png` to ``path`` atomically.

    Returns:
        ``path``.
    """
    return atomic_write_bytes(path, froc_png(result, title))


__all__ = ["froc_png", "plot_froc"]
