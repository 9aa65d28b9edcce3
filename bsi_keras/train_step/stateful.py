"""The train step on backends with stateful variables (TensorFlow, PyTorch)."""

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
    """A ``train_step(self, data)`` method running `compute_gradients` on the variables."""

    def train_step(self: keras.Model, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        result = compute_gradients(
            self,
            options,
            [v.value for v in self.trainable_variables],
            [v.value for v in self.non_trainable_variables],
            x,
            y,
            sample_weight,
            self.optimizer.scale_loss,
            self.optimizer.iterations.value,
        )
        for variable, value in zip(self.non_trainable_variables, result.non_trainable):
            variable.assign(value)

        def apply() -> None:
            self.optimizer.apply(result.grads, self.trainable_variables)

        if options.loss_dropout is None:
            apply()
        else:
            skip = skip_update(
                result.loss,
                state.previous_loss.value,
                state.active.value,
                options.loss_dropout.rule,
            )
            ops.cond(skip, lambda: None, apply)
            state.previous_loss.assign(result.loss)
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        # Under tf.distribute the loss is divided by the replicas (their gradients are
        # summed); Keras's own TensorFlow step undoes that for the reported loss.
        loss = keras_private.unscale_loss_for_distribution(result.loss)
        keras_private.update_loss_tracker(self, loss, batch)
        logs = self.compute_metrics(x, y, result.y_pred, sample_weight)
        if options.noise_scale is not None:
            noise = tuple(v.value for v in state.noise_state)
            noise, extra = noise_scale_logs(options.noise_scale, result, noise)
            for variable, value in zip(state.noise_state, noise):
                variable.assign(value)
            logs = {**logs, **extra}
        return logs

    return train_step
