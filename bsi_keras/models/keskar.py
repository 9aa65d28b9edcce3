"""Keskar et al.'s networks (ICLR 2017, "On Large-Batch Training ... Sharp Minima").

C1 (``shallownet``) and C2 (``deepnet``) follow the reference code, keskarnitish/
large-batch-training ``network_zoo.py`` (Keras 1, channels first), layer by layer, here
channels last. F1 is the paper's fully connected MNIST network (see `f1`).

Every normalization layer is `bsi_keras.layers.GhostBatchNormalization`. The reference used
``BatchNormalization(mode=2)``: the statistics of the batch in training *and* at test time,
no moving statistics; ``batch_stats_in_inference=True`` reproduces that (the evaluation then
depends on the evaluation batch size, 5000 in the reference). The default is ordinary batch
normalization with moving statistics.
"""

from __future__ import annotations

from typing import Any

import keras

from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models.weight_decay import weight_decay_regularizer


def _normalized_relu(
    name: str,
    virtual_batch_size: int | None,
    momentum: float,
    batch_stats: bool,
    decay: keras.regularizers.Regularizer | None,
    epsilon: float = 1e-3,
    moving_statistics: str = "keras",
) -> list[keras.layers.Layer]:
    """BN then ReLU, the block that follows every conv and hidden dense layer."""
    return [
        GhostBatchNormalization(
            virtual_batch_size,
            momentum=momentum,
            epsilon=epsilon,
            batch_stats_in_inference=batch_stats,
            moving_statistics=moving_statistics,
            beta_regularizer=decay,
            gamma_regularizer=decay,
            name=f"{name}_bn",
        ),
        keras.layers.ReLU(name=f"{name}_relu"),
    ]


def _decayed(decay: keras.regularizers.Regularizer | None) -> dict[str, Any]:
    """The regularizer arguments of a dense or convolution layer."""
    return {"kernel_regularizer": decay, "bias_regularizer": decay}


def c1(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    virtual_batch_size: int | None = None,
    batch_stats_in_inference: bool = False,
    bn_momentum: float = 0.9,
    weight_decay: float = 0.0,
    bn_statistics: str = "keras",
) -> keras.Model:
    """C1, the reference's ``shallownet`` (C3 is the same net on CIFAR-100).

    Conv 64 5x5 same, BN, ReLU, MaxPool 3x3 stride 2 same; the same again; Flatten,
    Dense 384, BN, ReLU, Dropout 0.5, Dense 192, BN, ReLU, Dropout 0.5, Dense softmax.

    Args:
        input_shape: image shape, channels last (CIFAR-10 by default).
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of every BN layer (None: the whole batch).
        batch_stats_in_inference: normalize with the batch's statistics at test time too,
            as the reference's ``BatchNormalization(mode=2)``.
        bn_momentum: momentum of the moving statistics (0.9, as `mnist_cnn` argues, so
            that the few hundred updates of a large-batch run leave them on the data).
        weight_decay: PyTorch-style weight decay of every trainable weight (see
            `bsi_keras.models.weight_decay`).
        bn_statistics: how the moving statistics follow the ghost batches, ``"keras"`` or
            ``"per_ghost_batch"`` (the reference PyTorch studies'; see
            `bsi_keras.layers.GhostBatchNormalization`'s ``moving_statistics``).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> c1().count_params()
    1759242
    """
    decay = weight_decay_regularizer(weight_decay)
    layers: list[keras.layers.Layer] = [keras.Input(input_shape)]
    for i in (1, 2):
        layers += [
            keras.layers.Conv2D(64, 5, padding="same", name=f"conv{i}", **_decayed(decay)),
            *_normalized_relu(
                f"conv{i}",
                virtual_batch_size,
                bn_momentum,
                batch_stats_in_inference,
                decay,
                moving_statistics=bn_statistics,
            ),
            keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}"),
        ]
    layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate((384, 192), start=1):
        layers += [
            keras.layers.Dense(units, name=f"dense{i}", **_decayed(decay)),
            *_normalized_relu(
                f"dense{i}",
                virtual_batch_size,
                bn_momentum,
                batch_stats_in_inference,
                decay,
                moving_statistics=bn_statistics,
            ),
            keras.layers.Dropout(0.5, name=f"dense{i}_dropout"),
        ]
    layers.append(
        keras.layers.Dense(num_classes, activation="softmax", name="classifier", **_decayed(decay))
    )
    return keras.Sequential(layers, name="c1")


# (filters, dropout after BN-ReLU) of C2's 13 convolutions, None closing a block with
# max pooling instead, exactly as the reference's deepnet.
_C2_BLOCKS: tuple[tuple[tuple[int, float | None], ...], ...] = (
    ((64, 0.3), (64, None)),
    ((128, 0.4), (128, None)),
    ((256, 0.4), (256, 0.4), (256, None)),
    ((512, 0.4), (512, 0.4), (512, None)),
    ((512, 0.4), (512, 0.4), (512, None)),
)


def c2(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    virtual_batch_size: int | None = None,
    batch_stats_in_inference: bool = False,
    bn_momentum: float = 0.9,
    weight_decay: float = 0.0,
    bn_statistics: str = "keras",
) -> keras.Model:
    """C2, the reference's VGG-like ``deepnet`` (C4 is the same net on CIFAR-100).

    Thirteen Conv 3x3 same + BN + ReLU in blocks 64,64 | 128,128 | 256x3 | 512x3 | 512x3,
    each block closed by MaxPool 2x2 stride 2 same; dropout 0.3 after the first conv and
    0.4 after every other conv but the last of each block; then Flatten, Dropout 0.5,
    Dense 512, BN, ReLU, Dropout 0.5, Dense softmax.

    Args:
        input_shape: image shape, channels last (CIFAR-10 by default).
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of every BN layer (None: the whole batch).
        batch_stats_in_inference: normalize with the batch's statistics at test time too,
            as the reference's ``BatchNormalization(mode=2)``.
        bn_momentum: momentum of the moving statistics (see `c1`).
        weight_decay: PyTorch-style weight decay of every trainable weight (see
            `bsi_keras.models.weight_decay`).
        bn_statistics: how the moving statistics follow the ghost batches, ``"keras"`` or
            ``"per_ghost_batch"`` (the reference PyTorch studies'; see
            `bsi_keras.layers.GhostBatchNormalization`'s ``moving_statistics``).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> c2().count_params()
    15001418
    """
    decay = weight_decay_regularizer(weight_decay)
    layers: list[keras.layers.Layer] = [keras.Input(input_shape)]
    index = 0
    for block, convs in enumerate(_C2_BLOCKS, start=1):
        for filters, dropout in convs:
            index += 1
            name = f"conv{index}"
            layers += [
                keras.layers.Conv2D(filters, 3, padding="same", name=name, **_decayed(decay)),
                *_normalized_relu(
                    name,
                    virtual_batch_size,
                    bn_momentum,
                    batch_stats_in_inference,
                    decay,
                    moving_statistics=bn_statistics,
                ),
            ]
            if dropout is not None:
                layers.append(keras.layers.Dropout(dropout, name=f"{name}_dropout"))
        layers.append(keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{block}"))
    layers += [
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dropout(0.5, name="flatten_dropout"),
        keras.layers.Dense(512, name="dense1", **_decayed(decay)),
        *_normalized_relu(
            "dense1",
            virtual_batch_size,
            bn_momentum,
            batch_stats_in_inference,
            decay,
            moving_statistics=bn_statistics,
        ),
        keras.layers.Dropout(0.5, name="dense1_dropout"),
        keras.layers.Dense(num_classes, activation="softmax", name="classifier", **_decayed(decay)),
    ]
    return keras.Sequential(layers, name="c2")


def f1(
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    virtual_batch_size: int | None = None,
    batch_stats_in_inference: bool = False,
    bn_momentum: float = 0.9,
    hidden_layers: int = 5,
    units: int = 512,
    bn_epsilon: float = 1e-3,
    weight_decay: float = 0.0,
    bn_statistics: str = "keras",
) -> keras.Model:
    """F1, the paper's fully connected MNIST network.

    Flatten (784 inputs), then ``hidden_layers`` x (Dense ``units``, BN, ReLU), then Dense
    softmax. Keskar et al. release no code for F1; the widths are those of the paper's
    Appendix B.1 as we recall it ("a 784-dimensional input layer followed by 5
    batch-normalized layers of 512 neurons each with ReLU activations", softmax output of
    10), which we could not re-read here. They agree with the F1 that Hoffer et al.
    re-implemented for their large-batch study (eladhoffer/bigBatch, ``models/mnist_f1.py``:
    Linear 784->512, BatchNorm1d, ReLU, four more Linear 512->512 + BN + ReLU, Linear
    512->10). The order dense -> BN -> ReLU is that of C1 and of bigBatch; the paper does not
    spell it out.

    Args:
        input_shape: image shape (flattened by the first layer).
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of every BN layer (None: the whole batch).
        batch_stats_in_inference: normalize with the batch's statistics at test time too,
            as the reference's ``BatchNormalization(mode=2)``.
        bn_momentum: momentum of the moving statistics (see `c1`).
        hidden_layers: number of hidden layers (5 in the paper).
        units: width of every hidden layer (512 in the paper).
        bn_epsilon: epsilon of the normalizations (Keras's 1e-3; bigBatch's ``mnist_f1``
            preset uses PyTorch's 1e-5).
        weight_decay: PyTorch-style weight decay of every trainable weight (see
            `bsi_keras.models.weight_decay`).
        bn_statistics: how the moving statistics follow the ghost batches, ``"keras"`` or
            ``"per_ghost_batch"`` (the reference PyTorch studies'; see
            `bsi_keras.layers.GhostBatchNormalization`'s ``moving_statistics``).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> f1().count_params()
    1467914
    """
    decay = weight_decay_regularizer(weight_decay)
    layers: list[keras.layers.Layer] = [
        keras.Input(input_shape),
        keras.layers.Flatten(name="flatten"),
    ]
    for i in range(1, hidden_layers + 1):
        layers += [
            keras.layers.Dense(units, name=f"dense{i}", **_decayed(decay)),
            *_normalized_relu(
                f"dense{i}",
                virtual_batch_size,
                bn_momentum,
                batch_stats_in_inference,
                decay,
                bn_epsilon,
                bn_statistics,
            ),
        ]
    layers.append(
        keras.layers.Dense(num_classes, activation="softmax", name="classifier", **_decayed(decay))
    )
    return keras.Sequential(layers, name="f1")
