"""Models by name: each a function returning an uncompiled `keras.Model`.

Every model normalizes with `bsi_keras.layers.GhostBatchNormalization` and takes the virtual
batch size as ``virtual_batch_size`` (the command line's ``--mini_batch_size``).

Example:

>>> model = get_model("mnist_cnn", virtual_batch_size=10)
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from bsi_keras.models.mnist_cnn import mnist_cnn

ModelBuilder = Callable[..., keras.Model]

_REGISTRY: dict[str, ModelBuilder] = {
    "mnist_cnn": mnist_cnn,
}


def available_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def register_model(name: str, builder: ModelBuilder) -> None:
    """Add ``builder`` to the registry under ``name`` (for user models)."""
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = builder


def apply_weight_decay(model: keras.Model, weight_decay: float) -> keras.Model:
    """Add L2 weight decay on every trainable weight, as PyTorch's ``SGD(weight_decay=)``.

    PyTorch adds ``weight_decay * w`` to each gradient; the same gradient comes from the
    loss term ``weight_decay / 2 * |w|^2``, which this attaches to each trainable variable
    (biases and batch-norm parameters included, as in the reference code).

    Args:
        model: a built model.
        weight_decay: the coefficient (0 removes nothing and adds nothing).

    Returns:
        The same model.

    Example:

    >>> m = apply_weight_decay(get_model("mnist_cnn"), 5e-4)
    >>> all(v.regularizer is not None for v in m.trainable_variables)
    True
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if weight_decay > 0:
        for variable in model.trainable_variables:
            variable.regularizer = keras.regularizers.L2(weight_decay / 2)
    return model


def apply_weight_decay(model: keras.Model, weight_decay: float) -> keras.Model:
    """Add L2 weight decay on every trainable weight, as PyTorch's ``SGD(weight_decay=)``.

    PyTorch adds ``weight_decay * w`` to each gradient; the same gradient comes from the
    loss term ``weight_decay / 2 * |w|^2``, which this attaches to each trainable variable
    (biases and batch-norm parameters included, as in the reference code).

    Args:
        model: a built model.
        weight_decay: the coefficient (0 removes nothing and adds nothing).

    Returns:
        The same model.

    Example:

    >>> m = apply_weight_decay(get_model("mnist_cnn"), 5e-4)
    >>> all(v.regularizer is not None for v in m.trainable_variables)
    True
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if weight_decay > 0:
        for variable in model.trainable_variables:
            variable.regularizer = keras.regularizers.L2(weight_decay / 2)
    return model


def get_model(name: str, **options: Any) -> keras.Model:
    """Build the model registered as ``name``.

    Args:
        name: a name from `available_models`.
        **options: passed to the builder (``input_shape``, ``num_classes``,
            ``virtual_batch_size``, and the model's own options).

    Returns:
        A new, uncompiled `keras.Model`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(available_models())}")
    return _REGISTRY[name](**options)
