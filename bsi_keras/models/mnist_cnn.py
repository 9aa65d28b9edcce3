"""The small MNIST CNN of the Keras reproduction of Smith et al. (CS 5824)."""

from __future__ import annotations

import keras

from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models.weight_decay import weight_decay_regularizer


def mnist_cnn(
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    virtual_batch_size: int | None = 10,
    filters: int = 8,
    bn_momentum: float = 0.9,
    weight_decay: float = 0.0,
    bn_statistics: str = "keras",
) -> keras.Model:
    """Ghost BN, Conv2D 3x3 (no activation), MaxPooling 2, Flatten, Dense softmax.

    The well-known Keras tutorial CNN (Victor Zhou) with a ghost batch norm layer in front
    of the convolution, as JCDetwiler/batch-size-mnist ran it (virtual batch size 10).

    Args:
        input_shape: image shape, channels last.
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of the normalization layer (None: whole batch).
        filters: convolution filters (8 in the reference).
        bn_momentum: momentum of the moving statistics. 0.9 is PyTorch's default (0.1 in
            its convention); Keras's 0.99 leaves the statistics far from the data after the
            few hundred updates of a large-batch schedule (0.99 ** 100 = 0.37 of the initial
            value remains after 100 updates), which would penalize exactly the schedules
            under study.
        weight_decay: PyTorch-style weight decay of every trainable weight (see
            `bsi_keras.models.weight_decay`).
        bn_statistics: how the moving statistics follow the ghost batches, ``"keras"`` or
            ``"per_ghost_batch"`` (the PyTorch studies'; see
            `bsi_keras.layers.GhostBatchNormalization`'s ``moving_statistics``).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> mnist_cnn().count_params()
    13614
    """
    decay = weight_decay_regularizer(weight_decay)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            GhostBatchNormalization(
                virtual_batch_size,
                momentum=bn_momentum,
                moving_statistics=bn_statistics,
                beta_regularizer=decay,
                gamma_regularizer=decay,
                name="ghost_bn",
            ),
            keras.layers.Conv2D(
                filters, 3, kernel_regularizer=decay, bias_regularizer=decay, name="conv"
            ),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(
                num_classes,
                activation="softmax",
                kernel_regularizer=decay,
                bias_regularizer=decay,
                name="classifier",
            ),
        ],
        name="mnist_cnn",
    )
