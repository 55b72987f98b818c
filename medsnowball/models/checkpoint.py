"""Checkpoints that hold tensors and a JSON config only: loading never runs pickled code.

Format (default, ``*.safetensors``): a `safetensors <https://huggingface.co/docs/safetensors>`_
file whose metadata entry ``"medsnowball"`` is the JSON of a
:class:`~medsnowball.models.config.ModelConfig` (model kind, architecture arguments,
input patch size / spacing / HU window, training metadata, format version).

Also accepted: ``*.pt`` / ``*.pth`` files holding a plain state dict (written by
``torch.save``) with the config in a JSON sidecar of the same stem (``model.json``).
They are read with ``torch.load(..., weights_only=True)``, which refuses any pickled
object that is not a tensor or a plain container; such a file raises
:class:`~medsnowball.core.errors.CheckpointError`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsnowball.core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from medsnowball.core.errors import CheckpointError, ConfigError, MissingDependencyError
from medsnowball.models.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

METADATA_KEY = "medsnowball"
SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth")


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        config: How to rebuild and feed the model.
        state_dict: Parameter and buffer tensors by name (on CPU).
        path: File it was read from.
    """

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    path: Path


def _state_of(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(model_or_state, torch.nn.Module):
        model = model_or_state
        # unwrap DistributedDataParallel / DataParallel
        inner = getattr(model, "module", None)
        if isinstance(inner, torch.nn.Module):
            model = inner
        state = model.state_dict()
    else:
        state = dict(model_or_state)
    # safetensors refuses shared / non-contiguous storage: store independent copies
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike[str],
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    config: ModelConfig,
) -> Path:
    """Write weights and config atomically.

    Args:
        path: Destination; ``.safetensors`` (recommended) or ``.pt`` / ``.pth`` (a plain
            state dict plus a ``.json`` sidecar).
        model_or_state: A module (DDP-wrapped ones are unwrapped) or a state dict.
        config: The model's configuration.

    Returns:
        The path written.

    Raises:
        CheckpointError: Unknown suffix.
    """
    import torch

    dest = Path(path)
    state = _state_of(model_or_state)
    cfg_json = json.dumps(config.to_dict(), sort_keys=True)
    suffix = dest.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        st = _safetensors()
        atomic_write_bytes(dest, st.torch.save(state, metadata={METADATA_KEY: cfg_json}))
    elif suffix in TORCH_SUFFIXES:
        with atomic_path(dest) as tmp:
            torch.save(state, tmp)
        _default_permissions(atomic_write_text(dest.with_suffix(".json"), cfg_json + "\n"))
    else:
        raise CheckpointError(
            f"cannot write checkpoint {dest}: expected a .safetensors, .pt or .pth file name."
        )
    _default_permissions(dest)
    logger.info("saved %s checkpoint (%d tensors) to %s", config.kind, len(state), dest)
    return dest


def _safetensors() -> Any:
    try:
        import safetensors
        import safetensors.torch
    except ImportError as exc:
        raise MissingDependencyError(
            "reading or writing .safetensors checkpoints needs the 'safetensors' package: "
            "pip install safetensors."
        ) from exc
    return safetensors


def _default_permissions(path: Path) -> None:
    """Give a written file the usual rw-r--r-- (minus umask), not mkstemp's private 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _torch_load_safe(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it carries pickled Python objects other than tensors "
            "(loading them could run arbitrary code). Re-save it as a plain state dict or as "
            f".safetensors. Details: {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}. The file is truncated or not a torch "
            "state dict; download or export it again."
        ) from exc


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    st = _safetensors()
    try:
        with st.safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (st.SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a valid .safetensors file ({exc}). "
            "Re-export it with medsnowball (save_checkpoint) or download it again."
        ) from exc
    return tensors, meta


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read tensors from a ``.safetensors`` or ``.pt`` file without running pickled code.

    Args:
        path: Checkpoint file.

    Returns:
        The stored dictionary (tensors, possibly nested in plain containers for ``.pt``).

    Raises:
        CheckpointError: Missing, unreadable or unsafe file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; check the path or train/export one.")
    if p.suffix.lower() == SAFETENSORS_SUFFIX:
        return dict(_read_safetensors(p)[0])
    obj = _torch_load_safe(p)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {p} holds a {type(obj).__name__}, expected a state dict of tensors."
        )
    return obj


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load a medsnowball checkpoint (tensors + JSON config).

    Args:
        path: ``.safetensors`` file, or ``.pt`` / ``.pth`` with a ``.json`` sidecar.

    Returns:
        The :class:`Checkpoint`.

    Raises:
        CheckpointError: Missing file or config, unsafe pickle, unreadable data, or a
            config this version does not understand.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; check the path or train/export one.")
    if p.suffix.lower() == SAFETENSORS_SUFFIX:
        tensors, meta = _read_safetensors(p)
        if METADATA_KEY not in meta:
            raise CheckpointError(
                f"checkpoint {p} has no '{METADATA_KEY}' config in its metadata; it was not "
                "written by medsnowball. Wrap its weights with "
                "save_checkpoint(path, state, config)."
            )
        cfg_text = meta[METADATA_KEY]
    elif p.suffix.lower() in TORCH_SUFFIXES:
        sidecar = p.with_suffix(".json")
        tensors = load_state_dict_file(p)
        if not sidecar.is_file():
            raise CheckpointError(
                f"checkpoint {p} has no JSON config sidecar {sidecar.name}; write one with "
                "ModelConfig.to_dict() or re-save with save_checkpoint()."
            )
        cfg_text = sidecar.read_text(encoding="utf-8")
    else:
        raise CheckpointError(
            f"checkpoint {p}: unknown format {p.suffix!r}; expected .safetensors, .pt or .pth."
        )
    try:
        config = ModelConfig.from_dict(json.loads(cfg_text))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {p} has an invalid config: {exc}") from exc
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {p} has non-tensor entries {bad[:5]}; expected a flat state dict."
        )
    return Checkpoint(config=config, state_dict=dict(tensors), path=p)


def load_into(
    model: nn.Module, state: Mapping[str, Any], path: str | os.PathLike[str] = "<memory>"
) -> None:
    """Load ``state`` into ``model`` strictly, with an error that lists what differs.

    Raises:
        CheckpointError: Missing or unexpected keys, or tensors of other shapes.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[:3]}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) e.g. {mismatched[:3]}")
        raise CheckpointError(
            f"checkpoint {path} does not fit the {type(model).__name__} network: "
            + "; ".join(parts)
            + ". The checkpoint was trained with another architecture: use its own config "
            "(load_model) or retrain."
        )
    model.load_state_dict(dict(state), strict=True)


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Build the network a checkpoint describes, load its weights, set eval mode.

    Args:
        path: Checkpoint file.
        device: Torch device string.

    Returns:
        ``(model, config)``.

    Raises:
        CheckpointError: See :func:`load_checkpoint` and :func:`load_into`.
    """
    from medsnowball.models.networks import build_model

    ckpt = load_checkpoint(path)
    model = build_model(ckpt.config)
    load_into(model, ckpt.state_dict, ckpt.path)
    model.to(device).eval()
    return model, ckpt.config


def save_training_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write a resume state (tensors, numbers, strings, lists, dicts only) atomically.

    Read it back with :func:`load_training_state` (``weights_only=True``).
    """
    import torch

    dest = Path(path)
    with atomic_path(dest) as tmp:
        torch.save(dict(state), tmp)
    return dest


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a resume state written by :func:`save_training_state` (no pickled code runs).

    Raises:
        CheckpointError: Missing, unreadable or unsafe file.
    """
    return load_state_dict_file(path)


__all__ = [
    "METADATA_KEY",
    "Checkpoint",
    "load_checkpoint",
    "load_into",
    "load_model",
    "load_state_dict_file",
    "load_training_state",
    "save_checkpoint",
    "save_training_state",
]
