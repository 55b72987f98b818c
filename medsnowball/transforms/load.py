"""``LoadCTd``: load a CT case inside a MONAI ``Compose``."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medsnowball.core.volume import CTVolume
from medsnowball.io.cases import load_case, load_ct
from medsnowball.io.monai_bridge import to_metatensor
from medsnowball.io.selection import CaseInput

__all__ = ["LoadCTd"]


class LoadCTd(MapTransform):
    """Replace a path / :class:`CaseInput` / :class:`CTVolume` under each key by a MetaTensor.

    The tensor is ``(1, x, y, z)`` with a RAS affine (see
    :mod:`medsnowball.io.monai_bridge`), so ``Orientationd``/``Spacingd`` work on it as on
    MONAI's own ``LoadImaged`` output. Loading uses :func:`medsnowball.io.load_ct` (file or
    folder: DICOM series selection, HU conversion, irregular-series rules) or
    :func:`medsnowball.io.load_case`.

    Args:
        keys: Keys holding what to load.
        dtype: numpy dtype of the tensor (float32 like MONAI's loader; None keeps int16).
        volume_key_postfix: When set, also store the :class:`CTVolume` under
            ``f"{key}{postfix}"`` (for writers that need the source files / metadata).
        allow_missing_keys: Ignore keys that are absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        dtype: Any = np.float32,
        volume_key_postfix: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.dtype = dtype
        self.volume_key_postfix = volume_key_postfix

    @staticmethod
    def _load(item: Any) -> CTVolume:
        if isinstance(item, CTVolume):
            return item
        if isinstance(item, CaseInput):
            return load_case(item)
        if isinstance(item, str | os.PathLike):
            return load_ct(item)
        raise TypeError(
            f"LoadCTd expects a path, CaseInput or CTVolume, got {type(item).__name__}."
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Load every key; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            volume = self._load(d[key])
            d[key] = to_metatensor(volume, dtype=self.dtype)
            if self.volume_key_postfix:
                d[f"{key}{self.volume_key_postfix}"] = volume
        return d
