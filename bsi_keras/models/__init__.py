"""Models by name: each a function returning an uncompiled `keras.Model`.

Every model normalizes with `bsi_keras.layers.GhostBatchNormalization`, takes the virtual
batch size as ``virtual_batch_size`` (the command line's ``--mini_batch_size``) and the
PyTorch-style weight decay of every trainable weight as ``weight_decay`` (through the layers'
regularizers, see `bsi_keras.models.weight_decay`). Besides the
registered names, `get_model` builds any wide ResNet named ``wrn_<depth>_<width>``, with
``_preact`` or ``_postact`` appended to choose the block style (see `wide_resnet`).

Example:

>>> model = get_model("mnist_cnn", virtual_batch_size=10)
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras

from bsi_keras.models.keskar import c1, c2, f1
from bsi_keras.models.mnist_cnn import mnist_cnn
from bsi_keras.models.mobilenet import mobilenet_v2
from bsi_keras.models.resnet import resnet44
from bsi_keras.models.wide_resnet import wide_resnet, wide_resnet_options

ModelBuilder = Callable[..., keras.Model]

_REGISTRY: dict[str, ModelBuilder] = {
    "mnist_cnn": mnist_cnn,
    # The same as JCDetwiler/batch-size-mnist built it in tf.keras 1.15: BatchNormalization's
    # default momentum 0.99 (bsi_keras's MNIST CNN takes 0.9, see `mnist_cnn`).
    "mnist_cnn_keras2": functools.partial(mnist_cnn, bn_momentum=0.99),
    "c1": c1,
    "c2": c2,
    "f1": f1,
    # bigBatch's mnist_f1 is F1 with PyTorch's BN epsilon and ghost batches of 128.
    "mnist_f1": functools.partial(f1, virtual_batch_size=128, bn_epsilon=1e-5),
    "mobilenet_v2": mobilenet_v2,
    "resnet44": resnet44,
    # The default CIFAR model; other depths and widths resolve by name in `get_model`.
    "wrn_16_4": functools.partial(wide_resnet, depth=16, width=4),
}


def available_models() -> list[str]:
    """The registered model names, sorted (`get_model` also takes ``wrn_<depth>_<width>``)."""
    return sorted(_REGISTRY)


def is_model_name(name: str) -> bool:
    """Whether `get_model` knows ``name`` (a registered name or ``wrn_<depth>_<width>``)."""
    return name in _REGISTRY or wide_resnet_options(name) is not None


def register_model(name: str, builder: ModelBuilder) -> None:
    """Add ``builder`` to the registry under ``name`` (for user models).

    The command line calls it with ``input_shape``, ``num_classes``, ``virtual_batch_size``,
    ``weight_decay`` and ``bn_statistics`` (the ghost batch norms' ``moving_statistics``), as
    the built-in builders take them.
    """
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = builder


def get_model(name: str, **options: Any) -> keras.Model:
    """Build the model registered as ``name``.

    Args:
        name: a name from `available_models`, or ``wrn_<depth>_<width>`` with an optional
            ``_preact`` / ``_postact`` suffix.
        **options: passed to the builder (``input_shape``, ``num_classes``,
            ``virtual_batch_size``, ``weight_decay``, ``bn_statistics``, and the model's own
            options).

    Returns:
        A new, uncompiled `keras.Model`.

    Example:

    >>> m = get_model("mnist_cnn", weight_decay=5e-4)
    >>> all(v.regularizer is not None for v in m.trainable_variables)
    True
    """
    if name in _REGISTRY:
        return _REGISTRY[name](**options)
    wrn = wide_resnet_options(name)
    if wrn is None:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(available_models())}, "
            "or wrn_<depth>_<width>[_preact]"
        )
    return wide_resnet(**wrn, **options)
