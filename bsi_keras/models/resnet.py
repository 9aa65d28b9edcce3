"""He et al.'s CIFAR ResNet-44, as the reference study trains it (``r44``)."""

from __future__ import annotations

from typing import Any

import keras

from bsi_keras.models.wide_resnet import wide_resnet


def resnet44(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    virtual_batch_size: int | None = 128,
    **options: Any,
) -> keras.Model:
    """ResNet-44 for CIFAR: a 16-channel stem, 3 stages x 7 basic blocks of 16/32/64 channels.

    The reference code's ``ResNet_cifar10(depth=44)`` (eladhoffer/bigBatch) is its WRN code
    with width 1, so this is `wide_resnet` ``(44, 1, style="postact")``: post-activation
    blocks and a 1x1 convolution + BN shortcut where the shape changes (He et al.'s option B;
    their paper's ResNet-44 pads the identity with zeros instead, option A, 0.66 M
    parameters as well).

    Args:
        input_shape: image shape, channels last.
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of every normalization (None: whole batch).
        **options: further `wide_resnet` options (``dropout``, ``bn_momentum``,
            ``weight_decay``, ...).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> resnet44().count_params()  # 661,338 trainable + 3,360 BN moving statistics
    664698
    """
    return wide_resnet(
        44,
        1,
        input_shape,
        num_classes,
        virtual_batch_size,
        style="postact",
        name="resnet44",
        **options,
    )
