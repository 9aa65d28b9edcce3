"""Gradient accumulation across calls of one compiled step: batch sizes that change no shape.

Megatron-LM grows the batch by changing how many fixed-shape micro-batches an update
accumulates, never the shapes it compiles. This step does the same for Keras's ``fit``:
the driver feeds micro-batches of one physical shape, each with three per-example columns
in the sample weight (`pack`): the example's weight, whether it is a real example or
padding, and whether the micro-batch is the last one of its update. Every call adds the
micro-batch's gradient to accumulators; the call that ends an update applies their mean
and clears them. The number of micro-batches per update is data, not a traced constant,
so growing the batch from 640 to 16,000 compiles nothing new, and a partial last batch is
padded to the physical shape with examples that weigh nothing: zero weight in the loss
and the metrics, and left out of ghost-batch-norm statistics (`bsi_keras.layers.example_mask`).

The loss of a micro-batch is the mean over its real examples (its weights rescaled by
``physical / real``, since Keras divides by the batch's length) plus the regularization
losses; its gradient enters the accumulators weighted by its real examples, so an update's
gradient is exactly that of its logical batch's mean loss, padding or not. Ghost-batch-norm
moving statistics move once per micro-batch, as with the reference study's chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from bsi_keras.layers import example_mask
from bsi_keras.train_step import keras_private
from bsi_keras.train_step.autodiff import stateless_loss, value_and_grad

# The columns of the packed sample weight.
WEIGHT, REAL, ENDS_UPDATE = 0, 1, 2


def pack(weight: np.ndarray | None, real: np.ndarray, ends_update: np.ndarray) -> np.ndarray:
    """The ``(n, 3)`` float32 sample weight the accumulating step reads.

    Args:
        weight: per-example weights (None: all 1).
        real: 1 for a real example, 0 for padding.
        ends_update: 1 for every example of a micro-batch that ends its update.

    Example:

    >>> pack(None, np.array([1, 1, 0]), np.array([0, 1, 1]))[:, 1:].tolist()
    [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    """
    weight = np.ones(len(real), "float32") if weight is None else weight
    return np.stack([weight * real, real, ends_update], axis=1).astype("float32")


@dataclass
class MicroBatch:
    """One micro-batch's contribution: its mean loss, gradient and new BN statistics."""

    loss: Any  # mean over the real examples, regularization included
    grads: list[Any]
    non_trainable: list[Any]
    y_pred: Any
    real: Any  # number of real examples (float32 scalar)
    ends_update: Any  # boolean scalar
    weight: Any  # per-example weights with the padding at zero, for the metrics
    mask: Any  # 1 for a real example, 0 for padding


def micro_batch_gradients(
    model: keras.Model, scale_loss: Callable[[Any], Any]
) -> Callable[..., MicroBatch]:
    """``f(trainable, non_trainable, x, y, packed) -> MicroBatch`` for ``model``."""

    def loss_fn(trainable, non_trainable, x, y, weight, real_mask):
        with example_mask(real_mask):
            loss, (y_pred, non_trainable) = stateless_loss(
                model, trainable, non_trainable, x, y, weight, training=True
            )
        return scale_loss(loss), (loss, y_pred, non_trainable)

    grad_fn = value_and_grad(loss_fn)

    def gradients(trainable, non_trainable, x, y, packed) -> MicroBatch:
        weight, real_mask = packed[:, WEIGHT], packed[:, REAL]
        real = ops.sum(real_mask)
        physical = ops.cast(ops.shape(real_mask)[0], "float32")
        # Keras's loss divides by the batch's length: rescaled, it is the real examples' mean.
        rescaled = weight * (physical / ops.maximum(real, 1.0))
        (_, (loss, y_pred, non_trainable)), grads = grad_fn(
            trainable, non_trainable, x, y, rescaled, ops.greater(real_mask, 0.5)
        )
        ends = ops.greater(packed[0, ENDS_UPDATE], 0.5)
        return MicroBatch(loss, grads, non_trainable, y_pred, real, ends, weight, real_mask)

    return gradients


class Accumulators:
    """The gradient sum and example count of the update in progress, as optimizer variables
    (Keras threads those through JAX's pure step and saves them in checkpoints).

    Args:
        optimizer: the model's optimizer (built here if needed).
        variables: the model's trainable variables.
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer, variables: list[keras.Variable]):
        if not optimizer.built:
            optimizer.build(variables)
        self.grads = [
            optimizer.add_variable(v.shape, dtype="float32", name=f"accumulated_{i}")
            for i, v in enumerate(variables)
        ]
        self.count = optimizer.add_variable((), dtype="float32", name="accumulated_examples")

    @property
    def variables(self) -> list[keras.Variable]:
        return [*self.grads, self.count]


def accumulate(sums: list[Any], count: Any, micro: MicroBatch) -> tuple[list[Any], Any, list]:
    """Add a micro-batch; return the new sums and count, and the update's mean gradient."""
    sums = [s + micro.real * ops.cast(g, "float32") for s, g in zip(sums, micro.grads)]
    count = count + micro.real
    mean = [s / ops.maximum(count, 1.0) for s in sums]
    return sums, count, mean


def cleared(values: list[Any], ends_update: Any) -> list[Any]:
    """``values``, or zeros where the update ended (the next micro-batch starts afresh)."""
    return [ops.where(ends_update, ops.zeros_like(v), v) for v in values]


def make_stateful_train_step(accumulators: Accumulators) -> Callable[..., dict[str, Any]]:
    """The accumulating ``train_step(self, data)`` on TensorFlow and PyTorch."""

    def train_step(self: keras.Model, data: Any) -> dict[str, Any]:
        x, y, packed = keras.utils.unpack_x_y_sample_weight(data)
        gradients = micro_batch_gradients(self, self.optimizer.scale_loss)
        micro = gradients(
            [v.value for v in self.trainable_variables],
            [v.value for v in self.non_trainable_variables],
            x,
            y,
            packed,
        )
        for variable, value in zip(self.non_trainable_variables, micro.non_trainable):
            variable.assign(value)
        sums, count, mean = accumulate(
            [v.value for v in accumulators.grads], accumulators.count.value, micro
        )

        def apply() -> None:
            self.optimizer.apply(mean, self.trainable_variables)

        ops.cond(micro.ends_update, apply, lambda: None)
        for variable, value in zip(
            accumulators.variables, cleared([*sums, count], micro.ends_update)
        ):
            variable.assign(value)
        loss = keras_private.unscale_loss_for_distribution(micro.loss)
        keras_private.update_loss_tracker(self, loss, micro.real)
        return keras_private.compute_metrics_of(self, y, micro.y_pred, micro.weight, micro.mask)

    return train_step


def make_jax_train_step(accumulators: Accumulators) -> Callable[..., tuple[dict, tuple]]:
    """The accumulating ``train_step(self, state, data)`` in the form Keras's JAX trainer
    expects."""

    def train_step(self: keras.Model, values: tuple, data: Any) -> tuple[dict, tuple]:
        trainable, non_trainable, optimizer_values, metrics_values = values
        x, y, packed = keras.utils.unpack_x_y_sample_weight(data)
        optimizer = self.optimizer
        index = {id(v): i for i, v in enumerate(optimizer.variables)}
        slots = [index[id(v)] for v in accumulators.variables]

        def scale_loss(loss: Any) -> Any:
            mapping = list(zip(optimizer.variables, optimizer_values))
            with keras.StatelessScope(state_mapping=mapping):
                return optimizer.scale_loss(loss)

        micro = micro_batch_gradients(self, scale_loss)(trainable, non_trainable, x, y, packed)
        sums, count, mean = accumulate(
            [optimizer_values[i] for i in slots[:-1]], optimizer_values[slots[-1]], micro
        )

        def apply() -> tuple[list, list]:
            return optimizer.stateless_apply(optimizer_values, mean, trainable)

        trainable, optimizer_values = ops.cond(
            micro.ends_update, apply, lambda: (list(trainable), list(optimizer_values))
        )
        optimizer_values = list(optimizer_values)
        for i, value in zip(slots, cleared([*sums, count], micro.ends_update)):
            optimizer_values[i] = value
        logs, metrics_values = keras_private.update_metrics_variables(
            self,
            metrics_values,
            micro.loss,
            x,
            y,
            micro.y_pred,
            micro.weight,
            loss_weight=micro.real,
            real=micro.mask,
        )
        return logs, (trainable, micro.non_trainable, optimizer_values, metrics_values)

    return train_step
