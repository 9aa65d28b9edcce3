"""Weight decay as Keras regularizers, so that a saved model keeps it.

The model builders pass `weight_decay_regularizer` as the kernel, bias, beta and gamma
regularizer of every layer with trainable weights: the decay is then part of each layer's
config, and a model read back with `keras.saving.load_model` has the same losses.
"""

from __future__ import annotations

import keras


def weight_decay_regularizer(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """The L2 regularizer equivalent to PyTorch's ``SGD(weight_decay=...)``.

    PyTorch adds ``weight_decay * w`` to each gradient; the same gradient comes from the
    loss term ``weight_decay / 2 * |w|^2``. The reference code decays every weight, biases
    and batch-norm parameters included, so the builders regularize every trainable weight.

    Args:
        weight_decay: the coefficient, >= 0.

    Returns:
        ``keras.regularizers.L2(weight_decay / 2)``, or None for 0 (no regularization).

    Example:

    >>> weight_decay_regularizer(5e-4).get_config()
    {'l2': 0.00025}
    >>> weight_decay_regularizer(0.0) is None
    True
    """
    if not weight_decay >= 0:  # also refuses NaN
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    return keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None
