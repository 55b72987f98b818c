"""LUNA16-style matching of scored detections to reference nodules.

Rules (as in the LUNA16 challenge evaluation):

* a prediction is a *hit* on a reference nodule when its centre lies within the nodule's
  radius: ``distance(prediction, nodule centre) <= diameter / 2``;
* several hits on one nodule count once, with the highest score among them;
* a prediction that hits no nodule is a false positive;
* *irrelevant* nodules (e.g. smaller than 3 mm, or findings only some readers marked) are
  neither counted as nodules nor allowed to produce false positives: predictions that hit
  only irrelevant nodules are ignored;
* a prediction that lies within the radius of two relevant nodules is a hit on both (rare;
  LUNA16 does the same).

Inputs are deliberately loose: predictions and truth may be the dataclasses of this module,
plain dicts, ``(center, score)`` / ``(center, diameter)`` tuples, or any object with the
right attributes (:class:`medsnowball.core.Candidate`, :class:`medsnowball.core.Nodule`,
``medsnowball.synth`` truth records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.core.volume import Vec3

# LUNA16's evaluation gives excluded findings without a diameter a 10 mm diameter.
DEFAULT_MISSING_DIAMETER_MM = 10.0


@dataclass(frozen=True)
class Prediction:
    """One scored detection.

    Attributes:
        center_lps: World position (x, y, z), LPS mm.
        score: Confidence; higher means more likely a nodule.
        nodule_id: Optional id linking it to a measured :class:`~medsnowball.core.Nodule`
            (its value in an instance mask).
    """

    center_lps: Vec3
    score: float
    nodule_id: int | None = None


@dataclass(frozen=True)
class TruthNodule:
    """One reference nodule.

    Attributes:
        center_lps: World position (x, y, z), LPS mm.
        diameter_mm: Diameter defining the hit radius (and the size band).
        type: Optional attenuation type ("solid", "part_solid", "ground_glass").
        location: Optional location ("parenchymal", "juxtapleural", "juxtavascular").
        relevant: ``False`` for findings that must neither count nor cause false positives.
        id: Optional id (its value in a truth instance mask).
        volume_mm3: Optional reference volume.
    """

    center_lps: Vec3
    diameter_mm: float
    type: str | None = None
    location: str | None = None
    relevant: bool = True
    id: int | None = None
    volume_mm3: float | None = None


@dataclass(frozen=True, eq=False)
class CaseMatch:
    """Result of matching one case.

    Attributes:
        truth: The case's reference nodules (relevant and irrelevant), in input order.
        predictions: The case's predictions, in input order.
        hit_score: Per truth nodule (relevant or not), the highest score among its hits,
            ``-inf`` if missed. Irrelevant nodules' entries are filled but never counted.
        hit_prediction: Per truth nodule, index of the highest-scoring hit, or -1.
        label: Per prediction: "tp" (hits a relevant nodule), "fp" or "ignored" (hits
            only irrelevant nodules).
        matched_truth: Per prediction, the indices of the relevant nodules it hits.
    """

    truth: tuple[TruthNodule, ...]
    predictions: tuple[Prediction, ...]
    hit_score: NDArray[np.float64]
    hit_prediction: NDArray[np.int64]
    label: tuple[str, ...]
    matched_truth: tuple[tuple[int, ...], ...] = field(default=())

    @property
    def relevant(self) -> NDArray[np.bool_]:
        """Boolean ``(n_truth,)``: which nodules count."""
        return np.array([t.relevant for t in self.truth], dtype=bool)

    @property
    def n_nodules(self) -> int:
        """Number of relevant reference nodules."""
        return int(self.relevant.sum())

    @property
    def fp_scores(self) -> NDArray[np.float64]:
        """Scores of the false-positive predictions ``(n_fp,)``."""
        return np.array(
            [p.score for p, lab in zip(self.predictions, self.label, strict=True) if lab == "fp"],
            dtype=np.float64,
        )

    @property
    def nodule_scores(self) -> NDArray[np.float64]:
        """Highest hit score of each relevant nodule ``(n_nodules,)`` (``-inf``: missed)."""
        return self.hit_score[self.relevant]


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _vec3(value: Any, what: str) -> Vec3:
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size != 3 or not np.all(np.isfinite(a)):
        raise ConfigError(f"{what}: expected a finite (x, y, z) position in LPS mm, got {value!r}.")
    return (float(a[0]), float(a[1]), float(a[2]))


def as_prediction(obj: Any) -> Prediction:
    """Coerce a detection to a :class:`Prediction`.

    Args:
        obj: A :class:`Prediction`, a ``(center_lps, score)`` tuple, a dict with keys
            ``center_lps`` and ``score``, or an object with those attributes (e.g.
            :class:`medsnowball.core.Candidate` or :class:`medsnowball.core.Nodule`, whose
            ``id`` becomes ``nodule_id``).

    Returns:
        The prediction.

    Raises:
        ConfigError: If no centre or score can be found.
    """
    if isinstance(obj, Prediction):
        return obj
    if isinstance(obj, tuple | list) and len(obj) == 2:
        return Prediction(_vec3(obj[0], "prediction centre"), float(obj[1]))
    center = _get(obj, "center_lps")
    score = _get(obj, "score")
    if center is None or score is None:
        raise ConfigError(
            f"Expected a prediction with 'center_lps' and 'score', got {type(obj).__name__}."
        )
    nid = _get(obj, "nodule_id", _get(obj, "id"))
    return Prediction(
        _vec3(center, "prediction centre"), float(score), None if nid is None else int(nid)
    )


def as_truth(obj: Any, *, min_diameter_mm: float = 0.0) -> TruthNodule:
    """Coerce a reference nodule to a :class:`TruthNodule`.

    Args:
        obj: A :class:`TruthNodule`, a ``(center_lps, diameter_mm)`` tuple, a dict with
            keys ``center_lps``, ``diameter_mm`` and optionally ``type``, ``location``,
            ``relevant``, ``id``, ``volume_mm3``, or an object with those attributes (e.g. a
            ``medsnowball.synth`` nodule truth record).
        min_diameter_mm: Nodules smaller than this become irrelevant.

    Returns:
        The reference nodule. A missing or negative diameter becomes
        :data:`DEFAULT_MISSING_DIAMETER_MM` and marks the nodule irrelevant.

    Raises:
        ConfigError: If no centre can be found.
    """
    if isinstance(obj, TruthNodule):
        t = obj
    elif isinstance(obj, tuple | list) and len(obj) == 2:
        t = TruthNodule(_vec3(obj[0], "truth centre"), float(obj[1]))
    else:
        center = _get(obj, "center_lps")
        if center is None:
            raise ConfigError(
                f"Expected a reference nodule with 'center_lps', got {type(obj).__name__}."
            )
        diameter = _get(obj, "diameter_mm")
        vol = _get(obj, "volume_mm3")
        tid = _get(obj, "id")
        t = TruthNodule(
            center_lps=_vec3(center, "truth centre"),
            diameter_mm=float(diameter) if diameter is not None else -1.0,
            type=_as_str(_get(obj, "type")),
            location=_as_str(_get(obj, "location")),
            relevant=bool(_get(obj, "relevant", True)),
            id=None if tid is None else int(tid),
            volume_mm3=None if vol is None else float(vol),
        )
    relevant = t.relevant
    diameter = t.diameter_mm
    if not np.isfinite(diameter) or diameter <= 0:
        diameter, relevant = DEFAULT_MISSING_DIAMETER_MM, False
    if diameter < min_diameter_mm:
        relevant = False
    if relevant != t.relevant or diameter != t.diameter_mm:
        t = TruthNodule(t.center_lps, diameter, t.type, t.location, relevant, t.id, t.volume_mm3)
    return t


def match_candidates(
    predictions: Sequence[Any],
    truth: Sequence[Any],
    *,
    min_diameter_mm: float = 0.0,
    relevant: Callable[[TruthNodule], bool] | None = None,
) -> CaseMatch:
    """Match one case's predictions to its reference nodules (LUNA16 rules, see module doc).

    Args:
        predictions: Scored detections (anything :func:`as_prediction` accepts).
        truth: Reference nodules (anything :func:`as_truth` accepts).
        min_diameter_mm: Reference nodules smaller than this are irrelevant.
        relevant: Optional extra filter; nodules for which it returns ``False`` become
            irrelevant (used for per-size / per-type analyses: hits on the other nodules
            are then ignored rather than counted as false positives).

    Returns:
        The per-nodule and per-prediction outcome.

    Raises:
        ConfigError: On malformed inputs.
    """
    preds = tuple(as_prediction(p) for p in predictions)
    nods = [as_truth(t, min_diameter_mm=min_diameter_mm) for t in truth]
    if relevant is not None:
        nods = [
            t
            if (t.relevant and relevant(t)) or not t.relevant
            else TruthNodule(
                t.center_lps, t.diameter_mm, t.type, t.location, False, t.id, t.volume_mm3
            )
            for t in nods
        ]
    truths = tuple(nods)
    n_t, n_p = len(truths), len(preds)
    hit_score = np.full(n_t, -np.inf)
    hit_pred = np.full(n_t, -1, dtype=np.int64)
    if n_t == 0 or n_p == 0:
        return CaseMatch(
            truths, preds, hit_score, hit_pred, ("fp",) * n_p, tuple(() for _ in preds)
        )
    pc = np.array([p.center_lps for p in preds], dtype=np.float64)  # (n_p, 3)
    tc = np.array([t.center_lps for t in truths], dtype=np.float64)  # (n_t, 3)
    radius = np.array([t.diameter_mm / 2.0 for t in truths])
    is_rel = np.array([t.relevant for t in truths], dtype=bool)
    dist = np.linalg.norm(pc[:, None, :] - tc[None, :, :], axis=-1)  # (n_p, n_t)
    inside = dist <= radius[None, :]
    scores = np.array([p.score for p in preds], dtype=np.float64)
    labels: list[str] = []
    matched: list[tuple[int, ...]] = []
    for i in range(n_p):
        rel_hits = np.flatnonzero(inside[i] & is_rel)
        if rel_hits.size:
            labels.append("tp")
        elif inside[i].any():
            labels.append("ignored")
        else:
            labels.append("fp")
        matched.append(tuple(int(j) for j in rel_hits))
        for j in np.flatnonzero(inside[i]):
            if scores[i] > hit_score[j]:
                hit_score[j] = scores[i]
                hit_pred[j] = i
    return CaseMatch(truths, preds, hit_score, hit_pred, tuple(labels), tuple(matched))


__all__ = [
    "DEFAULT_MISSING_DIAMETER_MM",
    "CaseMatch",
    "Prediction",
    "TruthNodule",
    "as_prediction",
    "as_truth",
    "match_candidates",
]
