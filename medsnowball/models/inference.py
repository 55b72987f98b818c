"""Inference wrappers: learned false-positive reduction and U-Net nodule segmentation.

Both take a :class:`~medsnowball.core.volume.CTVolume` on any grid; patches are
resampled to the model's spacing (see :mod:`medsnowball.models.patches`), batched, and
run on ``device`` (``"auto"`` picks CUDA when present; mixed precision on CUDA only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsnowball.core.errors import CheckpointError, ConfigError
from medsnowball.core.findings import Candidate, NoduleSegmentation
from medsnowball.core.volume import CTVolume
from medsnowball.models.checkpoint import load_model
from medsnowball.models.combiner import COMBINE_MODES, ScoreCombiner
from medsnowball.models.config import ModelConfig
from medsnowball.models.patches import extract_patches, patch_to_source

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

#: Folder of the weights shipped with medsnowball.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_FP_WEIGHTS = WEIGHTS_DIR / "fp_classifier.safetensors"
DEFAULT_UNET_WEIGHTS = WEIGHTS_DIR / "nodule_unet.safetensors"

ProgressCallback = Callable[[int, int], None]
#: Flip test-time augmentation: every subset of the patch axes (0 = z, 1 = y, 2 = x).
FLIP_AXES: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` into a torch device.

    Raises:
        ConfigError: CUDA requested but not available, or an unknown device string.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available; use --device cpu or auto."
        )
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N].") from exc


def autocast_context(
    device: torch.device, enabled: bool = True
) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision on CUDA, nothing elsewhere."""
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _resolve_checkpoint(checkpoint: str | os.PathLike[str] | None, default: Path) -> Path:
    path = Path(checkpoint) if checkpoint is not None else default
    if not path.is_file():
        raise CheckpointError(
            f"model weights {path} not found. Train them (medsnowball train ...) or pass the "
            "path of a checkpoint; the classical pipeline needs no weights."
        )
    return path


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, max(1, size)):
        yield slice(start, min(n, start + size))


class _PatchModel:
    """Shared loading / device / batching logic of the wrappers."""

    expected_kind: str = ""

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None,
        default: Path,
        device: str = "auto",
        batch_size: int = 64,
        amp: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.checkpoint = _resolve_checkpoint(checkpoint, default)
        model, config = load_model(self.checkpoint, device=str(self.device))
        if config.kind != self.expected_kind:
            raise CheckpointError(
                f"checkpoint {self.checkpoint} holds a {config.kind!r} model, expected "
                f"{self.expected_kind!r}; pass the right weights file."
            )
        self.model: nn.Module = model
        self.config: ModelConfig = config
        self.batch_size = int(batch_size)
        self.amp = bool(amp)

    def _forward(self, patches: NDArray[np.float32]) -> NDArray[np.float32]:
        """Run the network on ``(N, Z, Y, X)`` patches, return sigmoid outputs."""
        import torch

        outs: list[NDArray[np.float32]] = []
        with torch.inference_mode():
            for sl in _batches(len(patches), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(patches[sl]))[:, None].to(self.device)
                with autocast_context(self.device, self.amp):
                    y = self.model(x)
                outs.append(torch.sigmoid(y.float()).cpu().numpy())
        if not outs:
            return np.zeros((0,), dtype=np.float32)
        return np.concatenate(outs, axis=0)


class FPReducer(_PatchModel):
    """Score candidates with the learned false-positive reduction CNN.

    Args:
        checkpoint: Weights file; default: the shipped ``fp_classifier.safetensors``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        batch_size: Patches per forward pass.
        amp: Mixed precision on CUDA.
        combine: How the new score is formed: ``"geometric"`` (default: geometric mean
            of the detector's score and the network's probability, which keeps what the
            detector knows), ``"stacked"`` (the logistic stacking stored in the checkpoint,
            see :mod:`medsnowball.models.combiner`), ``"replace"`` (the probability alone)
            or ``"mean"``.
        tta: Average the probability over the 8 axis flips of each patch (8 times the
            compute). ``None``: as the stored combiner was fitted (``flip_tta``; off for
            weights without a combiner).

    Raises:
        CheckpointError: Weights missing, unsafe, or not a classifier.
    """

    expected_kind = "fp_classifier"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str = "auto",
        batch_size: int = 128,
        amp: bool = True,
        combine: str = "geometric",
        tta: bool | None = None,
    ) -> None:
        if combine not in COMBINE_MODES:
            raise ConfigError(f"combine must be one of {COMBINE_MODES}, got {combine!r}.")
        super().__init__(checkpoint, DEFAULT_FP_WEIGHTS, device, batch_size, amp)
        self.combine = combine
        self._require_combiner(combine)
        fitted = self.combiner
        self.tta = bool(fitted.flip_tta if tta is None and fitted is not None else tta)

    def _require_combiner(self, mode: str) -> None:
        """Raise CheckpointError when ``mode`` is ``"stacked"`` and the weights carry none."""
        if mode == "stacked" and self.combiner is None:
            raise CheckpointError(
                f"checkpoint {self.checkpoint} has no fitted score combiner "
                "(extra['combiner']); fit one with python -m medsnowball.training.stacking "
                "or use combine='geometric'."
            )

    def probabilities(
        self, volume: CTVolume, centers_zyx: NDArray[Any], tta: bool | None = None
    ) -> NDArray[np.float32]:
        """Nodule probability ``(N,)`` of patches centred on ``centers_zyx`` ``(N, 3)``.

        ``tta`` overrides the instance's flip averaging for this call.
        """
        patches = extract_patches(
            volume.array, volume.spacing_zyx, centers_zyx, self.config.patch, self.batch_size
        )
        return self.patch_probabilities(patches, tta)

    def patch_probabilities(
        self, patches: NDArray[Any], tta: bool | None = None
    ) -> NDArray[np.float32]:
        """Nodule probability ``(N,)`` of ready-made patches ``(N, *patch.size_zyx)`` in [0, 1].

        With flip averaging (``tta``, default: the instance's), the mean over the 8
        copies flipped along every subset of the z, y, x axes.
        """
        x = np.asarray(patches, dtype=np.float32)
        if not (self.tta if tta is None else tta):
            return self._forward(x).reshape(-1)
        total = np.zeros(len(x), dtype=np.float64)
        for axes in FLIP_AXES:
            flipped = np.flip(x, axis=tuple(a + 1 for a in axes)) if axes else x
            total += self._forward(np.ascontiguousarray(flipped)).reshape(-1)
        return (total / len(FLIP_AXES)).astype(np.float32)

    @property
    def combiner(self) -> ScoreCombiner | None:
        """The fitted score combination stored with the weights (``None`` if absent)."""
        record = self.config.extra.get("combiner")
        return None if record is None else ScoreCombiner.from_dict(record)

    def score(
        self,
        volume: CTVolume,
        candidates: Sequence[Candidate],
        combine: str | None = None,
        tta: bool | None = None,
    ) -> list[Candidate]:
        """Return the candidates with scores from the network (same order).

        The previous score is kept in ``features["detector_score"]`` and the network's
        probability in ``features["fp_probability"]``.

        Args:
            volume: The CT the candidates were found in.
            candidates: Candidates with ``center_zyx`` on ``volume``'s grid.
            combine: Overrides the instance's ``combine`` mode for this call.
            tta: Overrides the instance's flip averaging for this call.

        Returns:
            New :class:`Candidate` objects.

        Raises:
            CheckpointError: ``"stacked"`` with weights that carry no fitted combiner.
        """
        if not candidates:
            return []
        mode = combine or self.combine
        self._require_combiner(mode)  # before the network runs
        centers = np.asarray([c.center_zyx for c in candidates], dtype=np.float64)
        prob = self.probabilities(volume, centers, tta)
        return rescore(candidates, prob, mode, self.combiner if mode == "stacked" else None)


def rescore(
    candidates: Sequence[Candidate],
    probabilities: ArrayLike,
    combine: str = "replace",
    combiner: ScoreCombiner | None = None,
) -> list[Candidate]:
    """Combine detector scores with network probabilities (see :class:`FPReducer`).

    Args:
        candidates: Detector candidates.
        probabilities: CNN nodule probability per candidate ``(N,)``.
        combine: ``"stacked"``, ``"geometric"``, ``"mean"`` or ``"replace"``.
        combiner: The fitted combination (needed for ``"stacked"``).

    Returns:
        New candidates (same order) with the final score; the detector's score is kept in
        ``features["detector_score"]``, the probability in ``features["fp_probability"]``.

    Raises:
        ConfigError: Unknown ``combine`` mode, or ``"stacked"`` without a combiner.
    """
    if combine not in COMBINE_MODES:
        raise ConfigError(f"combine must be one of {COMBINE_MODES}, got {combine!r}.")
    if combine == "stacked" and combiner is None:
        raise ConfigError("combine='stacked' needs a fitted ScoreCombiner.")
    out = []
    for cand, prob in zip(candidates, np.asarray(probabilities).reshape(-1), strict=True):
        p = float(prob)
        if combine == "replace":
            s = p
        elif combine == "mean":
            s = 0.5 * (p + cand.score)
        elif combine == "stacked" and combiner is not None:
            s = float(combiner(cand.score, p))
        else:
            s = float(np.sqrt(max(p, 0.0) * max(cand.score, 0.0)))
        feats = {**cand.features, "detector_score": cand.score, "fp_probability": p}
        out.append(dataclasses.replace(cand, score=min(1.0, max(0.0, s)), features=feats))
    return out


class UNetNoduleSegmenter(_PatchModel):
    """Segment nodules with the 3-D U-Net on a patch around each candidate.

    Args:
        checkpoint: Weights file; default: the shipped ``nodule_unet.safetensors``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        batch_size: Patches per forward pass.
        amp: Mixed precision on CUDA.
        threshold: Probability above which a voxel is nodule (default: the config's).

    Raises:
        CheckpointError: Weights missing, unsafe, or not a U-Net.
    """

    expected_kind = "nodule_unet"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str = "auto",
        batch_size: int = 8,
        amp: bool = True,
        threshold: float | None = None,
    ) -> None:
        super().__init__(checkpoint, DEFAULT_UNET_WEIGHTS, device, batch_size, amp)
        self.threshold = float(self.config.threshold if threshold is None else threshold)

    def probability_patches(
        self, volume: CTVolume, candidates: Sequence[Candidate]
    ) -> NDArray[np.float32]:
        """U-Net probabilities ``(N, *patch.size_zyx)`` on the model's patch grid."""
        centers = np.asarray([c.center_zyx for c in candidates], dtype=np.float64).reshape(-1, 3)
        patches = extract_patches(volume.array, volume.spacing_zyx, centers, self.config.patch)
        return self._forward(patches)[:, 0]

    def segment_many(
        self,
        volume: CTVolume,
        candidates: Sequence[Candidate],
        progress: ProgressCallback | None = None,
    ) -> list[NoduleSegmentation]:
        """Segment every candidate (batched); see :meth:`segment`."""
        from scipy import ndimage

        if not candidates:
            return []
        probs = self.probability_patches(volume, candidates)
        out = []
        for i, (cand, prob) in enumerate(zip(candidates, probs, strict=True)):
            values, offset = patch_to_source(
                prob, cand.center_zyx, volume.spacing_zyx, volume.shape, self.config.patch
            )
            mask = values > self.threshold
            if mask.any():
                lab, n = ndimage.label(mask)
                if n > 1:
                    # keep the component nearest to the candidate centre
                    centre = np.asarray(cand.center_zyx) - np.asarray(offset)
                    coords = np.argwhere(lab > 0)
                    nearest = coords[np.argmin(((coords - centre) ** 2).sum(axis=1))]
                    mask = lab == lab[tuple(nearest)]
            out.append(NoduleSegmentation(candidate=cand, mask=mask, offset_zyx=offset))
            if progress is not None:
                progress(i + 1, len(candidates))
        return out

    def segment(self, volume: CTVolume, candidate: Candidate) -> NoduleSegmentation:
        """Segment one nodule.

        Args:
            volume: The CT.
            candidate: Where the nodule is (``center_zyx`` on ``volume``'s grid).

        Returns:
            A boolean patch on the source grid (the connected component nearest the
            candidate; empty when the network finds no nodule there).
        """
        return self.segment_many(volume, [candidate])[0]


__all__ = [
    "DEFAULT_FP_WEIGHTS",
    "DEFAULT_UNET_WEIGHTS",
    "WEIGHTS_DIR",
    "FPReducer",
    "UNetNoduleSegmenter",
    "autocast_context",
    "get_fp_reducer",
    "get_unet_segmenter",
    "rescore",
    "resolve_device",
]


@functools.lru_cache(maxsize=4)
def _cached(kind: str, checkpoint: str | None, device: str) -> _PatchModel:
    if kind == "fp":
        return FPReducer(checkpoint, device=device)
    return UNetNoduleSegmenter(checkpoint, device=device)


def get_fp_reducer(
    checkpoint: str | os.PathLike[str] | None = None, device: str = "auto"
) -> FPReducer:
    """A process-wide cached :class:`FPReducer` (loaded once per checkpoint and device).

    Pipeline steps call this per case, so the weights are read once per worker process.
    """
    model = _cached("fp", None if checkpoint is None else str(checkpoint), device)
    return model  # type: ignore[return-value]


def get_unet_segmenter(
    checkpoint: str | os.PathLike[str] | None = None, device: str = "auto"
) -> UNetNoduleSegmenter:
    """A process-wide cached :class:`UNetNoduleSegmenter` (see :func:`get_fp_reducer`)."""
    model = _cached("unet", None if checkpoint is None else str(checkpoint), device)
    return model  # type: ignore[return-value]
