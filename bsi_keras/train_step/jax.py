"""The train step on JAX, whose Keras trainer threads all state through a pure function."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from bsi_keras.train_step import keras_private
from bsi_keras.train_step.core import (
    StepOptions,
    compute_gradients,
    skip_update,
)
from bsi_keras.train_step.noise_scale import noise_scale_logs
from bsi_keras.train_step.state import StepState


def make_train_step(options: StepOptions, state: StepState) -> Any:
    """A ``train_step(self, state, data)`` method in the form Keras's JAX trainer expects."""

    def train_step(self: keras.Model, values: tuple, data: Any) -> tuple[dict, tuple]:
        trainable, non_trainable, optimizer_values, metrics_values = values
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def scale_loss(loss: Any) -> Any:
            mapping = list(zip(self.optimizer.variables, optimizer_values))
            with keras.StatelessScope(state_mapping=mapping):
                return self.optimizer.scale_loss(loss)

        step = optimizer_values[state.index(self.optimizer, self.optimizer.iterations)]
        result = compute_gradients(
            self, options, trainable, non_trainable, x, y, sample_weight, scale_loss, step
        )

        def apply() -> tuple[list, list]:
            return self.optimizer.stateless_apply(optimizer_values, result.grads, trainable)

        if options.loss_dropout is None:
            trainable, optimizer_values = apply()
        else:
            previous = state.index(self.optimizer, state.previous_loss)
            active = state.index(self.optimizer, state.active)
            skip = skip_update(
                result.loss,
                optimizer_values[previous],
                optimizer_values[active],
                options.loss_dropout.rule,
            )
            trainable, optimizer_values = ops.cond(
                skip, lambda: (list(trainable), list(optimizer_values)), apply
            )
            optimizer_values = list(optimizer_values)
            optimizer_values[previous] = ops.cast(result.loss, optimizer_values[previous].dtype)
        logs, metrics_values = keras_private.update_metrics_variables(
            self, metrics_values, result.loss, x, y, result.y_pred, sample_weight
        )
        if options.noise_scale is not None:
            indices = [state.index(self.optimizer, v) for v in state.noise_state]
            noise = tuple(optimizer_values[i] for i in indices)
            noise, extra = noise_scale_logs(options.noise_scale, result, noise)
            optimizer_values = list(optimizer_values)
            for i, value in zip(indices, noise):
                optimizer_values[i] = value
            logs = {**logs, **extra}
        return logs, (trainable, result.non_trainable, optimizer_values, metrics_values)

    return train_step
