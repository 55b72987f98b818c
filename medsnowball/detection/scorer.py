"""Calibrated candidate scoring: a small model of candidate features stored as JSON.

Two model kinds are supported, both evaluated with numpy only:

* ``"logistic"``: ``p = sigmoid(b + w . (x - mean) / scale)``;
* ``"gbm"``: gradient-boosted regression trees on the log-odds,
  ``p = sigmoid(a * (base + sum_t tree_t(x)) + c)`` where ``a``, ``c`` are a Platt
  recalibration fitted on held-out phantoms.

The packaged model (``scorer_classical.json``) is fitted offline on synthetic phantoms by
:mod:`medsnowball.detection.fit_scorer`; the JSON records the training seeds.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.errors import ConfigError

DEFAULT_MODEL = "scorer_classical.json"
KINDS = ("logistic", "gbm")


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class CandidateScorer:
    """Maps candidate features to a probability that the candidate is a nodule.

    Args:
        model: Model dictionary (see module docstring); ``"features"`` lists the feature
            names in column order.

    Raises:
        ConfigError: If the dictionary is not a valid model.
    """

    def __init__(self, model: dict[str, Any]) -> None:
        kind = model.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"Candidate scorer 'kind' must be one of {KINDS}, got {kind!r}.")
        names = model.get("features")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError("Candidate scorer needs a non-empty 'features' list of names.")
        self.model = model
        self.kind: str = kind
        self.feature_names: tuple[str, ...] = tuple(names)
        nf = len(names)
        try:
            if kind == "logistic":
                self._mean = np.asarray(model["mean"], dtype=np.float64).reshape(nf)
                self._scale = np.asarray(model["scale"], dtype=np.float64).reshape(nf)
                self._coef = np.asarray(model["coef"], dtype=np.float64).reshape(nf)
                self._intercept = float(model["intercept"])
            else:
                self._base = float(model["base"])
                self._platt = (float(model["platt"][0]), float(model["platt"][1]))
                self._trees = [
                    (
                        np.asarray(t["feature"], dtype=np.intp),
                        np.asarray(t["threshold"], dtype=np.float64),
                        np.asarray(t["left"], dtype=np.intp),
                        np.asarray(t["right"], dtype=np.intp),
                        np.asarray(t["value"], dtype=np.float64),
                    )
                    for t in model["trees"]
                ]
                for feat, *_ in self._trees:
                    if feat.size and (feat.max() >= nf):
                        raise ConfigError("Candidate scorer tree uses an unknown feature index.")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"Invalid {kind} candidate scorer model: {exc}") from exc

    # ------------------------------------------------------------------ I/O
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CandidateScorer:
        """Read a model JSON file.

        Raises:
            ConfigError: If the file is missing or not a valid model.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            return cls(json.loads(text))
        except FileNotFoundError as exc:
            raise ConfigError(
                f"Candidate scorer file {p} not found; pass an existing JSON model or omit it "
                "to use the packaged one."
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Candidate scorer file {p} is not valid JSON: {exc}") from exc

    @classmethod
    def default(cls) -> CandidateScorer:
        """The packaged model fitted on synthetic phantoms."""
        return _default_scorer()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as compact JSON (atomically; floats kept to 7 significant digits)."""
        return atomic_write_text(
            path, json.dumps(_rounded(self.model), separators=(",", ":")) + "\n"
        )

    # ------------------------------------------------------------------ scoring
    def matrix(self, features: list[dict[str, float]]) -> NDArray[np.float64]:
        """Feature dictionaries -> ``(n, n_features)`` matrix in model order.

        Raises:
            ConfigError: If a feature the model needs is missing.
        """
        x = np.zeros((len(features), len(self.feature_names)))
        for i, f in enumerate(features):
            try:
                x[i] = [f[name] for name in self.feature_names]
            except KeyError as exc:
                raise ConfigError(
                    f"Candidate features lack {exc}, which the scorer model needs."
                ) from exc
        return x

    def log_odds(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """Raw log-odds of a feature matrix ``(n, n_features)`` -> ``(n,)``."""
        x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
        if self.kind == "logistic":
            return self._intercept + ((x - self._mean) / self._scale) @ self._coef
        f = np.full(x.shape[0], self._base)
        rows = np.arange(x.shape[0])
        for feat, thr, left, right, value in self._trees:
            node = np.zeros(x.shape[0], dtype=np.intp)
            while True:
                internal = left[node] >= 0
                if not internal.any():
                    break
                go_left = x[rows, feat[node]] <= thr[node]
                nxt = np.where(go_left, left[node], right[node])
                node = np.where(internal, nxt, node)
            f += value[node]
        return self._platt[0] * f + self._platt[1]

    def predict(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """Probabilities in [0, 1] of a feature matrix ``(n, n_features)`` -> ``(n,)``."""
        return _sigmoid(self.log_odds(x))

    def score(self, features: dict[str, float]) -> float:
        """Probability of one candidate."""
        return float(self.predict(self.matrix([features]))[0])

    def score_many(self, features: list[dict[str, float]]) -> NDArray[np.float64]:
        """Probabilities of several candidates ``(n,)``."""
        if not features:
            return np.zeros(0)
        return self.predict(self.matrix(features))


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.7g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj


@lru_cache(maxsize=1)
def _default_scorer() -> CandidateScorer:
    ref = resources.files("medsnowball.detection").joinpath(DEFAULT_MODEL)
    try:
        text = ref.read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # pragma: no cover - packaging error
        raise ConfigError(
            f"The packaged candidate scorer {DEFAULT_MODEL} is missing; reinstall medsnowball."
        ) from exc
    return CandidateScorer(json.loads(text))


__all__ = ["DEFAULT_MODEL", "CandidateScorer"]
