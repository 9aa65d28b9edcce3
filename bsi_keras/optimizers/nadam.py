"""Nadam with Dozat's momentum schedule, as Keras 2 and tf.keras 1.x / 2.x ran it.

Dozat (2016) and every Keras before Keras 3 warm the momentum up as
``mu_t = beta_1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))`` with ``schedule_decay =
0.004`` (Keras 2.2.4's ``keras/optimizers.py``; TensorFlow 1.15's
``tensorflow/python/keras/optimizer_v2/nadam.py``, ``decay = schedule_decay``). Keras 3's
``keras.optimizers.Nadam`` computes ``0.96 ** t``: its momentum reaches ``beta_1`` within a
few dozen updates, where the original's is still about ``beta_1 / 2`` after a thousand
(``0.9 * (1 - 0.5 * 0.96 ** 4) = 0.52``). The rest of the update is the same.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bsi_keras")
class Nadam(keras.optimizers.Nadam):
    """Keras 3's Nadam with the momentum schedule's ``schedule_decay`` of Keras 2.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`
            (default 0.001, tf.keras 1.15's; Keras 2.2.4's standalone Nadam had 0.002).
        schedule_decay: the exponent's factor of the momentum warm-up (0.004: Keras 2's;
            1.0 gives Keras 3's Nadam).
        **kwargs: `keras.optimizers.Nadam` arguments (``beta_1``, ``beta_2``, ``epsilon``,
            ``global_clipnorm``, ``name``, ...).

    Example:

    >>> import numpy as np
    >>> w = keras.Variable(np.array([1.0], "float32"))
    >>> opt = Nadam(0.1)
    >>> opt.apply([keras.ops.ones((1,))], [w])
    >>> round(float(w.numpy()[0]), 4)  # a first step of 1.056 lr (Keras 3's Nadam: 1.063 lr)
    0.8944
    """

    def __init__(self, learning_rate: Any = 0.001, schedule_decay: float = 0.004, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if schedule_decay <= 0:
            raise ValueError(f"schedule_decay must be > 0, got {schedule_decay}")
        self.schedule_decay = float(schedule_decay)

    def _momentum_at(self, step: Any, dtype: str) -> Any:
        """``mu_step = beta_1 * (1 - 0.5 * 0.96 ** (schedule_decay * step))``."""
        exponent = ops.multiply(ops.cast(step, dtype), self.schedule_decay)
        return ops.cast(self.beta_1, dtype) * (1.0 - 0.5 * ops.power(0.96, exponent))

    def _backend_update_step(self, grads: Any, trainable_variables: Any, learning_rate: Any):
        # The product of the momenta so far, advanced once per update (before the variables').
        dtype = self._u_product.dtype
        mu_t = self._momentum_at(self.iterations + 1, dtype)
        self.assign(self._u_product, self._u_product * mu_t)
        # Keras's Nadam advances the product with its own schedule here: skip to its base's.
        super(keras.optimizers.Nadam, self)._backend_update_step(
            grads, trainable_variables, learning_rate
        )

    def update_step(self, gradient: Any, variable: keras.Variable, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        mu_t = self._momentum_at(self.iterations + 1, dtype)
        mu_next = self._momentum_at(self.iterations + 2, dtype)
        product_t = ops.cast(self._u_product, dtype)
        product_next = product_t * mu_next
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2))
        m_hat = ops.add(
            ops.divide(ops.multiply(mu_next, m), 1 - product_next),
            ops.divide(ops.multiply(1 - mu_t, gradient), 1 - product_t),
        )
        v_hat = ops.divide(v, 1 - ops.power(beta_2, step))
        self.assign_sub(
            variable, ops.divide(ops.multiply(m_hat, lr), ops.add(ops.sqrt(v_hat), self.epsilon))
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schedule_decay": self.schedule_decay}
