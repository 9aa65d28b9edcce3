"""A function-preserving rescaling: the same network, with other weights.

Batch normalization makes the loss blind to the scale of the layer before it: multiply a
Dense or convolution layer's kernel and bias by ``c`` and the normalization divides the
factor out again. The network then computes the same function from other weights, and a
measure of flatness that changes under the rescaling (Keskar et al.'s sharpness, whose box
``|z_i| <= eps (|x_i| + 1)`` is absolute for small weights and relative for large ones)
measures the scale of the weights too, not only the shape of the loss (Dinh, Pascanu,
Bengio and Bengio, "Sharp Minima Can Generalize For Deep Nets", ICML 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def rescale_before_batch_norm(
    model: keras.Model, layers: str | Sequence[str], scale: float
) -> keras.Model:
    """A copy of ``model`` that computes the same function with ``layers`` scaled by ``scale``.

    Each named layer (a Dense or convolution layer) must be followed directly by a batch
    normalization (the next layer of ``model.layers``, as in a Sequential model). In the
    copy, the layer's kernel and bias are multiplied by ``c = scale``; the batch norm after
    it, which computes ``gamma (h - mean) / sqrt(var + epsilon) + beta``, gets its moving
    mean multiplied by ``c``, its moving variance and its ``epsilon`` by ``c**2``. Every
    term of the quotient then carries the same factor ``c``: the copy's outputs equal the
    original's to float rounding, in inference mode (moving statistics) and in training
    mode (batch statistics, ghost batches included). Without the ``epsilon`` factor the
    function would change by a relative ``epsilon (1 / c**2 - 1) / var``.

    Regularization terms are not preserved: a weight decay of the scaled kernel is
    ``c**2`` times larger, so the training *loss* is unchanged only without weight decay.

    Args:
        model: the network (built, with its weights).
        layers: the name, or names, of the layers to scale.
        scale: ``c``, a positive factor.

    Returns:
        The rescaled copy, compiled with the original's loss when the original is compiled.

    Raises:
        ValueError: ``scale`` is not positive, or a named layer is missing, has no kernel,
            or is not followed by a batch normalization.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(3, name="dense"),
    ...     keras.layers.BatchNormalization(name="bn"),
    ...     keras.layers.Dense(2),
    ... ])
    >>> copy = rescale_before_batch_norm(model, "dense", 2.0)
    >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    >>> bool(np.allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5))
    True
    >>> float(copy.get_layer("dense").kernel[0, 0] / model.get_layer("dense").kernel[0, 0])
    2.0
    """
    if not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    names = [layers] if isinstance(layers, str) else list(layers)
    following = {name: _batch_norm_after(model, name) for name in names}
    norms = set(following.values())

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name in norms:
            config["epsilon"] = config["epsilon"] * scale**2
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone_layer)
    copy.set_weights(model.get_weights())
    for name, norm_name in following.items():
        layer, norm = copy.get_layer(name), copy.get_layer(norm_name)
        for weight in (layer.kernel, layer.bias):
            if weight is not None:
                weight.assign(weight * scale)
        norm.moving_mean.assign(norm.moving_mean * scale)
        norm.moving_variance.assign(norm.moving_variance * scale**2)
    if model.compiled:
        copy.compile(loss=model.loss)
    return copy


def _batch_norm_after(model: keras.Model, name: str) -> str:
    """The name of the batch normalization that directly follows layer ``name``."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise ValueError(f"layers: no layer {name!r} in {model.name} (layers: {', '.join(names)})")
    index = names.index(name)
    layer = model.layers[index]
    if getattr(layer, "kernel", None) is None:
        raise ValueError(f"layers: {name!r} has no kernel to scale (a Dense or conv layer has)")
    after = model.layers[index + 1] if index + 1 < len(names) else None
    if not isinstance(after, keras.layers.BatchNormalization):
        found = "nothing" if after is None else repr(after.name)
        raise ValueError(
            f"layers: {name!r} must be followed directly by batch normalization, not {found}"
        )
    return after.name
