"""MobileNetV2 from `keras.applications` with ghost batch norm, adapted to CIFAR images.

The application's network is cloned layer by layer (`keras.models.clone_model`): every
`keras.layers.BatchNormalization` becomes a `GhostBatchNormalization` with the same config,
weight decay enters every layer's regularizers, and every layer keeps its weights (the
ImageNet weights when asked for, the fresh initialization otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models.weight_decay import weight_decay_regularizer

# The usual CIFAR adaptation (e.g. kuangliu/pytorch-cifar): stride 1 in the stem and in
# block 1, so a 32x32 image ends in a 4x4 map instead of 1x1. Kernel shapes do not change,
# so ImageNet weights still fit.
CIFAR_STRIDES: dict[str, dict[str, Any]] = {
    "Conv1": {"strides": (1, 1)},
    "block_1_pad": {"padding": ((1, 1), (1, 1))},  # with the stride-1 "valid" conv below
    "block_1_depthwise": {"strides": (1, 1)},
}


def mobilenet_v2(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    virtual_batch_size: int | None = 128,
    weights: str | None = None,
    alpha: float = 1.0,
    cifar_strides: bool = True,
    bn_momentum: float | None = 0.9,
    weight_decay: float = 0.0,
    bn_statistics: str = "keras",
) -> keras.Model:
    """`keras.applications.MobileNetV2` with ghost batch norm and a ``num_classes`` head.

    Args:
        input_shape: image shape, channels last (at least 32x32).
        num_classes: number of output classes (a new dense softmax head).
        virtual_batch_size: ghost batch size of every normalization (None: whole batch).
        weights: None to train from scratch, ``"imagenet"`` to fine-tune from the ImageNet
            weights (downloaded once by Keras; the 224x224 ones where the input size is not
            one Keras has), or the path of a weights file of the application.
        alpha: width multiplier of the application.
        cifar_strides: use stride 1 in the stem and in block 1 (see `CIFAR_STRIDES`).
        bn_momentum: momentum of the moving statistics; 0.9 is PyTorch's default, which
            the reference MobileNetV2 study trains with (the application's 0.999 suits
            ImageNet's long epochs, not a schedule of a few hundred large-batch updates);
            None keeps the application's.
        weight_decay: PyTorch-style weight decay of every trainable weight (see
            `bsi_keras.models.weight_decay`).
        bn_statistics: how the moving statistics follow the ghost batches, ``"keras"`` or
            ``"per_ghost_batch"`` (see `bsi_keras.layers.GhostBatchNormalization`'s
            ``moving_statistics``).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> model = mobilenet_v2(virtual_batch_size=32)
    >>> model.get_layer("out_relu").output.shape
    (None, 4, 4, 1280)
    """
    base = keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=alpha, include_top=False, weights=weights, pooling="avg"
    )
    changes = CIFAR_STRIDES if cifar_strides else {}
    features = with_ghost_batch_norm(
        base, virtual_batch_size, bn_momentum, changes, weight_decay, bn_statistics
    )
    decay = weight_decay_regularizer(weight_decay)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=decay,
        bias_regularizer=decay,
        name="predictions",
    )(features.output)
    return keras.Model(features.input, outputs, name="mobilenet_v2")


def with_ghost_batch_norm(
    model: keras.Model,
    virtual_batch_size: int | None,
    momentum: float | None = None,
    config_changes: Mapping[str, Mapping[str, Any]] | None = None,
    weight_decay: float = 0.0,
    moving_statistics: str = "keras",
) -> keras.Model:
    """A copy of a functional model whose batch normalizations are ghost batch norms.

    Args:
        model: a functional model.
        virtual_batch_size: ghost batch size of the new normalizations.
        momentum: momentum of the new normalizations (None: each keeps its own).
        config_changes: per layer name, config entries to override in the copy.
        weight_decay: PyTorch-style weight decay, put in every weight regularizer of every
            layer of the copy (`bsi_keras.models.weight_decay`); 0 keeps the layers' own.
        moving_statistics: the new normalizations' convention (`GhostBatchNormalization`).

    Returns:
        The new model, with the weights of ``model``.

    Example:

    >>> inputs = keras.Input((4,))
    >>> plain = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    >>> ghost = with_ghost_batch_norm(plain, virtual_batch_size=2)
    >>> [type(layer).__name__ for layer in ghost.layers]
    ['InputLayer', 'GhostBatchNormalization']
    """
    changes = dict(config_changes or {})
    unknown = set(changes) - {layer.name for layer in model.layers}
    if unknown:
        raise ValueError(f"config_changes names layers the model lacks: {sorted(unknown)}")
    decay = weight_decay_regularizer(weight_decay)

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = {**layer.get_config(), **changes.get(layer.name, {})}
        if decay is not None:
            # Every weight's regularizer (kernel, depthwise, bias, beta, gamma, ...); the
            # activity regularizer penalizes outputs, not weights.
            for key in config:
                if key.endswith("_regularizer") and key != "activity_regularizer":
                    config[key] = decay
        if isinstance(layer, keras.layers.BatchNormalization):
            return _ghost_batch_norm(config, virtual_batch_size, momentum, moving_statistics)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.weights:  # the input layer, which gets a new name, has none
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


def _ghost_batch_norm(
    config: dict[str, Any],
    virtual_batch_size: int | None,
    momentum: float | None,
    moving_statistics: str,
) -> GhostBatchNormalization:
    """A ghost batch norm from a `BatchNormalization` config (same weights, same order)."""
    config = {
        **config,
        "virtual_batch_size": virtual_batch_size,
        "moving_statistics": moving_statistics,
    }
    if momentum is not None:
        config["momentum"] = momentum
    return GhostBatchNormalization.from_config(config)
