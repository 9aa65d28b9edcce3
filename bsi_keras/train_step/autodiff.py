"""Gradients on every Keras backend: the one place that knows which backend runs.

Keras 3 has no backend-neutral ``grad``. `value_and_grad` wraps the backend's own
(``jax.value_and_grad``, ``tf.GradientTape``, ``torch.autograd.grad``) behind one signature,
and `stateless_loss` evaluates a compiled model's loss at given weight values without
touching its variables, so analysis code (sharpness, landscapes) and the train step can
differentiate the loss with respect to weights in `keras.ops` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from bsi_keras.train_step import keras_private

GradFn = Callable[..., tuple[tuple[Any, Any], list[Any]]]


def value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> GradFn:
    """Differentiate ``fn(params, *args) -> (value, aux)`` with respect to ``params``.

    Args:
        fn: a function of a list of tensors ``params`` (and any other arguments) returning
            a scalar ``value`` and auxiliary outputs ``aux`` (not differentiated).

    Returns:
        A function ``(params, *args) -> ((value, aux), grads)`` with ``grads`` a list
        matching ``params``.

    Example:

    >>> from keras import ops
    >>> f = value_and_grad(lambda p: (ops.sum(p[0] ** 2), None))
    >>> (value, _), grads = f([ops.convert_to_tensor([1.0, 2.0])])
    >>> float(value), ops.convert_to_numpy(grads[0]).tolist()
    (5.0, [2.0, 4.0])
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.value_and_grad(fn, has_aux=True)
    if backend == "tensorflow":
        return _tensorflow_value_and_grad(fn)
    if backend == "torch":
        return _torch_value_and_grad(fn)
    raise NotImplementedError(f"no gradients for the {backend!r} backend")


def _tensorflow_value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> GradFn:
    import tensorflow as tf

    def wrapped(params: Sequence[Any], *args: Any) -> tuple[tuple[Any, Any], list[Any]]:
        params = [tf.convert_to_tensor(p) for p in params]
        with tf.GradientTape() as tape:
            tape.watch(params)
            value, aux = fn(params, *args)
        grads = tape.gradient(value, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return (value, aux), grads

    return wrapped


def _torch_value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> GradFn:
    import torch

    def wrapped(params: Sequence[Any], *args: Any) -> tuple[tuple[Any, Any], list[Any]]:
        params = [keras.ops.convert_to_tensor(p).detach().requires_grad_(True) for p in params]
        with torch.enable_grad():
            value, aux = fn(params, *args)
            grads = torch.autograd.grad(value, params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        return (value.detach(), aux), grads

    return wrapped


def stateless_loss(
    model: keras.Model,
    trainable_values: Sequence[Any],
    non_trainable_values: Sequence[Any],
    x: Any,
    y: Any,
    sample_weight: Any = None,
    training: bool = False,
) -> tuple[Any, tuple[Any, list[Any]]]:
    """The compiled loss of ``model`` at the given weight values, with no side effects.

    Args:
        model: a compiled model.
        trainable_values: one tensor per ``model.trainable_variables``.
        non_trainable_values: one tensor per ``model.non_trainable_variables``.
        x, y, sample_weight: a batch.
        training: run layers in training mode (batch statistics, dropout).

    Returns:
        ``(loss, (y_pred, new_non_trainable_values))``; the loss includes the model's
        regularization losses, as in training.
    """
    kwargs = {"training": training} if keras_private.call_has_training_arg(model) else {}
    y_pred, non_trainable, losses = model.stateless_call(
        list(trainable_values), list(non_trainable_values), x, return_losses=True, **kwargs
    )
    mapping = list(zip(model.trainable_variables, trainable_values)) + list(
        zip(model.non_trainable_variables, non_trainable)
    )
    # The call's own losses (regularizers at these weight values, add_loss) replace the
    # model's, exactly as Keras's JAX trainer does in its stateless train step.
    with (
        keras_private.losses_override(model, losses),
        keras.StatelessScope(state_mapping=mapping),
    ):
        loss = keras_private.compute_loss(model, x, y, y_pred, sample_weight, training)
    return loss, (y_pred, non_trainable)
