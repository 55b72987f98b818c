"""Network builders on MONAI networks: FP-reduction classifier and nodule U-Net.

Both networks output *logits*; apply ``torch.sigmoid`` for probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medsnowball.core.errors import ConfigError
from medsnowball.models.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def build_fp_classifier(config: ModelConfig) -> nn.Module:
    """Build the 3-D CNN that scores candidate patches as nodule / not nodule.

    A MONAI :class:`~monai.networks.nets.Classifier` (strided residual convolution
    units, then one linear layer) with a single logit output.

    Args:
        config: A ``fp_classifier`` configuration.

    Returns:
        Module mapping ``(B, 1, *config.patch.size_zyx)`` float patches in [0, 1] to
        ``(B, 1)`` logits.

    Raises:
        ConfigError: ``config.kind`` is not ``"fp_classifier"``.
    """
    if config.kind != "fp_classifier":
        raise ConfigError(f"build_fp_classifier needs kind 'fp_classifier', got {config.kind!r}.")
    from monai.networks.nets import Classifier

    return Classifier(
        in_shape=(1, *config.patch.size_zyx),
        classes=1,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        norm=config.norm,
        dropout=config.dropout,
        last_act=None,
    )


def build_nodule_unet(config: ModelConfig) -> nn.Module:
    """Build the 3-D U-Net that segments the nodule in a patch around a candidate.

    Args:
        config: A ``nodule_unet`` configuration.

    Returns:
        MONAI :class:`~monai.networks.nets.UNet` mapping ``(B, 1, Z, Y, X)`` patches in
        [0, 1] to ``(B, 1, Z, Y, X)`` logits of "voxel belongs to the nodule".

    Raises:
        ConfigError: ``config.kind`` is not ``"nodule_unet"`` or the patch size is not
            divisible by the total stride.
    """
    if config.kind != "nodule_unet":
        raise ConfigError(f"build_nodule_unet needs kind 'nodule_unet', got {config.kind!r}.")
    total = 1
    for s in config.strides:
        total *= s
    if any(n % total for n in config.patch.size_zyx):
        raise ConfigError(
            f"nodule_unet patch size {config.patch.size_zyx} must be divisible by the total "
            f"stride {total}; change patch.size_zyx or strides."
        )
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        norm=config.norm,
        dropout=config.dropout,
    )


def build_model(config: ModelConfig) -> nn.Module:
    """Build the network described by ``config`` (dispatch on ``config.kind``).

    Raises:
        ConfigError: Unknown kind.
        MissingDependencyError: ``retinanet`` without torchvision installed.
    """
    if config.kind == "fp_classifier":
        return build_fp_classifier(config)
    if config.kind == "nodule_unet":
        return build_nodule_unet(config)
    if config.kind == "retinanet":
        from medsnowball.models.retinanet import build_retinanet_network

        return build_retinanet_network(config)
    raise ConfigError(f"unknown model kind {config.kind!r}.")


__all__ = ["build_fp_classifier", "build_model", "build_nodule_unet"]
