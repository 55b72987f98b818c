"""Combination of the classical detector's score and the FP-reduction CNN's probability.

The shipped combination is a logistic stacking model fitted on the detector candidates of
the training recipe's validation scans (see :mod:`medsnowball.training.stacking`)::

    final = sigmoid(w_detector * logit(detector_score) + w_cnn * logit(fp_probability) + b)

Its parameters, the operating threshold chosen on the same scans and their provenance are
stored in the classifier checkpoint's JSON config (``extra["combiner"]``), so one weights
file carries everything the pipeline needs. The fixed rules ``geometric`` (geometric mean),
``mean`` and ``replace`` (the probability alone) need no fitting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsnowball.core.errors import ConfigError

__all__ = ["COMBINE_MODES", "LOGIT_EPS", "ScoreCombiner", "logit"]

#: Ways to form the final candidate score.
COMBINE_MODES: tuple[str, ...] = ("stacked", "geometric", "mean", "replace")
#: Scores are clipped to [eps, 1 - eps] before the logit.
LOGIT_EPS = 1e-4


def logit(p: ArrayLike, eps: float = LOGIT_EPS) -> NDArray[np.float64]:
    """``log(p / (1 - p))`` of ``p`` clipped to ``[eps, 1 - eps]`` (any shape)."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.asarray(np.log(q) - np.log1p(-q))


@dataclass(frozen=True)
class ScoreCombiner:
    """Logistic stacking of the detector score and the CNN probability.

    Attributes:
        w_detector: Weight of ``logit(detector_score)``.
        w_cnn: Weight of ``logit(fp_probability)``.
        bias: Intercept.
        threshold: Operating threshold on the combined score chosen on the validation
            scans (``None``: not chosen).
        provenance: How the parameters were obtained (seeds, counts, metrics).
        flip_tta: The CNN probability it was fitted on is the mean over the 8 axis-flip
            copies of each patch (test-time augmentation); :class:`FPReducer
            <medsnowball.models.inference.FPReducer>` then computes it the same way.
    """

    w_detector: float
    w_cnn: float
    bias: float
    threshold: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    flip_tta: bool = False

    def __post_init__(self) -> None:
        for name in ("w_detector", "w_cnn", "bias"):
            if not math.isfinite(float(getattr(self, name))):
                raise ConfigError(f"score combiner: {name} must be finite.")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"score combiner: threshold must be in [0, 1], found {self.threshold}."
            )

    def __call__(self, detector_score: ArrayLike, fp_probability: ArrayLike) -> NDArray[np.float64]:
        """Combined score in (0, 1), same shape as the inputs."""
        z = self.w_detector * logit(detector_score) + self.w_cnn * logit(fp_probability) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored as ``extra["combiner"]`` of the classifier config)."""
        return {
            "kind": "logistic_stacking",
            "features": ["logit(detector_score)", "logit(fp_probability)"],
            "w_detector": float(self.w_detector),
            "w_cnn": float(self.w_cnn),
            "bias": float(self.bias),
            "threshold": None if self.threshold is None else float(self.threshold),
            "flip_tta": bool(self.flip_tta),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCombiner:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: Not a logistic stacking record or a value is missing.
        """
        if data.get("kind") != "logistic_stacking":
            raise ConfigError(
                f"score combiner: expected kind 'logistic_stacking', found {data.get('kind')!r}."
            )
        try:
            thr = data.get("threshold")
            return cls(
                w_detector=float(data["w_detector"]),
                w_cnn=float(data["w_cnn"]),
                bias=float(data["bias"]),
                threshold=None if thr is None else float(thr),
                provenance=dict(data.get("provenance", {})),
                flip_tta=bool(data.get("flip_tta", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"score combiner: invalid record ({exc!r}).") from exc
