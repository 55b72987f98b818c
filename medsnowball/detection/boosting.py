"""Tiny numpy model fitting for the candidate scorer: logistic regression, boosted trees, Platt.

Used offline by :mod:`medsnowball.detection.fit_scorer`; the fitted models are plain dicts
that :class:`~medsnowball.detection.scorer.CandidateScorer` evaluates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_logistic(
    x: NDArray[np.floating],
    y: NDArray[np.floating],
    names: list[str],
    l2: float = 1.0,
    iterations: int = 50,
    sample_weight: NDArray[np.floating] | None = None,
) -> dict[str, Any]:
    """L2-regularised logistic regression by Newton's method (IRLS).

    Args:
        x: Features ``(n, f)``.
        y: Labels ``(n,)`` in {0, 1}.
        names: Feature names (``f``).
        l2: Ridge penalty on the standardised coefficients (not the intercept).
        iterations: Newton steps.
        sample_weight: Optional weights ``(n,)``.

    Returns:
        A ``"logistic"`` scorer model dict.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w_s = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((x.shape[0], 1)), (x - mean) / scale])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0

    def loss(b: NDArray[np.float64]) -> float:
        t = z @ b
        return float(np.sum(w_s * (np.logaddexp(0.0, t) - y * t)) + 0.5 * np.sum(penalty * b * b))

    beta = np.zeros(z.shape[1])
    current = loss(beta)
    for _ in range(iterations):
        p = _sigmoid(z @ beta)
        grad = z.T @ (w_s * (p - y)) + penalty * beta
        hess = (z * (w_s * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(beta)), grad)
        t = 1.0
        while t > 1e-6:  # backtracking line search
            trial = beta - t * step
            value = loss(trial)
            if value <= current:
                break
            t *= 0.5
        else:
            break
        beta, current = trial, value
        if np.max(np.abs(t * step)) < 1e-8:
            break
    return {
        "kind": "logistic",
        "features": list(names),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": beta[1:].tolist(),
        "intercept": float(beta[0]),
    }


def _bin_edges(x: NDArray[np.float64], n_bins: int) -> list[NDArray[np.float64]]:
    edges = []
    for j in range(x.shape[1]):
        q = np.unique(np.quantile(x[:, j], np.linspace(0, 1, n_bins + 1)[1:-1]))
        edges.append(q)
    return edges


def _fit_tree(
    binned: NDArray[np.intp],
    edges: list[NDArray[np.float64]],
    g: NDArray[np.float64],
    h: NDArray[np.float64],
    depth: int,
    min_leaf: float,
    lam: float,
    n_bins: int,
) -> dict[str, list[Any]]:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []

    def new_node() -> int:
        feature.append(0)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(0.0)
        return len(value) - 1

    def grow(idx: NDArray[np.intp], d: int) -> int:
        node = new_node()
        gs, hs = g[idx].sum(), h[idx].sum()
        value[node] = float(-gs / (hs + lam))
        if d >= depth or hs < 2 * min_leaf:
            return node
        parent = gs * gs / (hs + lam)
        best = (0.0, -1, -1)
        for j in range(binned.shape[1]):
            if edges[j].size == 0:
                continue
            gb = np.bincount(binned[idx, j], weights=g[idx], minlength=n_bins)
            hb = np.bincount(binned[idx, j], weights=h[idx], minlength=n_bins)
            gl, hl = np.cumsum(gb)[:-1], np.cumsum(hb)[:-1]
            gr, hr = gs - gl, hs - hl
            ok = (hl >= min_leaf) & (hr >= min_leaf) & (np.arange(gl.size) < edges[j].size)
            if not ok.any():
                continue
            gain = np.where(ok, gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent, -np.inf)
            b = int(np.argmax(gain))
            if gain[b] > best[0]:
                best = (float(gain[b]), j, b)
        if best[1] < 0:
            return node
        _, j, b = best
        feature[node] = j
        threshold[node] = float(edges[j][b])
        mask = binned[idx, j] <= b
        left[node] = grow(idx[mask], d + 1)
        right[node] = grow(idx[~mask], d + 1)
        return node

    grow(np.arange(binned.shape[0]), 0)
    return {"feature": feature, "threshold": threshold, "left": left, "right": right,
            "value": value}  # fmt: skip


def fit_gbm(
    x: NDArray[np.floating],
    y: NDArray[np.floating],
    names: list[str],
    n_trees: int = 200,
    depth: int = 3,
    learning_rate: float = 0.1,
    min_leaf: float = 5.0,
    lam: float = 1.0,
    n_bins: int = 32,
    sample_weight: NDArray[np.floating] | None = None,
) -> dict[str, Any]:
    """Gradient-boosted regression trees on the logistic loss (Newton leaves).

    Args:
        x: Features ``(n, f)``.
        y: Labels ``(n,)`` in {0, 1}.
        names: Feature names.
        n_trees: Boosting rounds.
        depth: Tree depth.
        learning_rate: Shrinkage.
        min_leaf: Smallest hessian sum in a leaf.
        lam: L2 penalty on leaf values.
        n_bins: Quantile bins per feature for split search.
        sample_weight: Optional weights ``(n,)``.

    Returns:
        A ``"gbm"`` scorer model dict (Platt parameters set to identity).
    """
    xf: NDArray[np.float64] = np.asarray(x, dtype=np.float64)
    yf: NDArray[np.float64] = np.asarray(y, dtype=np.float64)
    w_s = np.ones_like(yf) if sample_weight is None else np.asarray(sample_weight, np.float64)
    edges = _bin_edges(xf, n_bins)
    binned = np.stack(
        [np.searchsorted(e, xf[:, j], side="left") for j, e in enumerate(edges)], axis=1
    ).astype(np.intp)
    prior = float(np.clip(np.average(yf, weights=w_s), 1e-4, 1 - 1e-4))
    base = float(np.log(prior / (1 - prior)))
    f: NDArray[np.float64] = np.full(xf.shape[0], base)
    trees = []
    for _ in range(n_trees):
        p = _sigmoid(f)
        g = w_s * (p - yf)
        h = w_s * np.maximum(p * (1 - p), 1e-6)
        tree = _fit_tree(binned, edges, g, h, depth, min_leaf, lam, n_bins)
        tree["value"] = [v * learning_rate for v in tree["value"]]
        trees.append(tree)
        f = f + _apply_tree(tree, xf)
    return {
        "kind": "gbm",
        "features": list(names),
        "base": base,
        "platt": [1.0, 0.0],
        "trees": trees,
    }


def _apply_tree(tree: dict[str, list[Any]], x: NDArray[np.float64]) -> NDArray[np.float64]:
    feat = np.asarray(tree["feature"], dtype=np.intp)
    thr = np.asarray(tree["threshold"])
    left = np.asarray(tree["left"], dtype=np.intp)
    right = np.asarray(tree["right"], dtype=np.intp)
    value = np.asarray(tree["value"])
    node = np.zeros(x.shape[0], dtype=np.intp)
    rows = np.arange(x.shape[0])
    while True:
        internal = left[node] >= 0
        if not internal.any():
            break
        nxt = np.where(x[rows, feat[node]] <= thr[node], left[node], right[node])
        node = np.where(internal, nxt, node)
    return value[node]


def fit_platt(log_odds: NDArray[np.floating], y: NDArray[np.floating]) -> tuple[float, float]:
    """Platt scaling ``p = sigmoid(a * f + c)`` fitted by Newton's method.

    Args:
        log_odds: Raw model outputs ``(n,)``.
        y: Labels ``(n,)``.

    Returns:
        ``(a, c)``.
    """
    f = np.asarray(log_odds, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.stack([f, np.ones_like(f)], axis=1)

    def loss(b: NDArray[np.float64]) -> float:
        t = z @ b
        return float(np.sum(np.logaddexp(0.0, t) - y * t))

    beta = np.array([1.0, 0.0])
    current = loss(beta)
    for _ in range(100):
        p = _sigmoid(z @ beta)
        grad = z.T @ (p - y)
        hess = (z * (p * (1 - p))[:, None]).T @ z + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6:  # backtracking: Newton steps overshoot on saturated log-odds
            trial = beta - t * step
            value = loss(trial)
            if value <= current:
                break
            t *= 0.5
        else:
            break
        beta, previous, current = trial, current, value
        if previous - current < 1e-12 * max(1.0, abs(current)):
            break
    return float(beta[0]), float(beta[1])


def calibration_table(
    p: NDArray[np.floating], y: NDArray[np.floating], n_bins: int = 10
) -> list[tuple[float, float, float, int]]:
    """Reliability table: per probability bin, (lower edge, mean predicted, observed, count)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    out = []
    for i in range(n_bins):
        m = (p >= edges[i]) & ((p < edges[i + 1]) if i < n_bins - 1 else (p <= 1.0))
        if m.any():
            out.append((float(edges[i]), float(p[m].mean()), float(y[m].mean()), int(m.sum())))
    return out


__all__ = ["calibration_table", "fit_gbm", "fit_logistic", "fit_platt"]
