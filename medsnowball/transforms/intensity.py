"""``HUWindowd``: clip a Hounsfield-unit window and scale it linearly."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, ScaleIntensityRange

__all__ = ["HU_WINDOWS", "HUWindowd"]

#: Named windows as (lowest HU, highest HU): lung = level -600 / width 1500,
#: mediastinum = level 40 / width 400, bone = level 400 / width 1800.
HU_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-1350.0, 150.0),
    "mediastinum": (-160.0, 240.0),
    "bone": (-500.0, 1300.0),
    "full": (-1024.0, 3071.0),
}


class HUWindowd(MapTransform):
    """Map ``[hu_min, hu_max]`` linearly to ``[out_min, out_max]``, clipping outside.

    A thin, HU-named wrapper of MONAI's ``ScaleIntensityRange`` (works on tensors and
    arrays, keeps MetaTensor metadata).

    Args:
        keys: Keys of the images.
        window: A name from :data:`HU_WINDOWS` or a ``(hu_min, hu_max)`` pair.
        out_min: Output value at ``hu_min``.
        out_max: Output value at ``hu_max``.
        clip: Clip values outside the window (default True).
        dtype: Output dtype.
        allow_missing_keys: Ignore absent keys.

    Raises:
        ValueError: Unknown window name or ``hu_max <= hu_min``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        window: str | tuple[float, float] = "lung",
        out_min: float = 0.0,
        out_max: float = 1.0,
        clip: bool = True,
        dtype: Any = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if isinstance(window, str):
            if window not in HU_WINDOWS:
                raise ValueError(
                    f"Unknown HU window {window!r}; expected one of {sorted(HU_WINDOWS)} "
                    "or a (hu_min, hu_max) pair."
                )
            lo, hi = HU_WINDOWS[window]
        else:
            lo, hi = (float(window[0]), float(window[1]))
        if hi <= lo:
            raise ValueError(f"HU window needs hu_max > hu_min, got ({lo}, {hi}).")
        self.hu_min, self.hu_max = lo, hi
        self.scaler = ScaleIntensityRange(lo, hi, out_min, out_max, clip=clip, dtype=dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Window every key; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d
