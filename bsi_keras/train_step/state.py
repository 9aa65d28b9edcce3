"""State a custom train step keeps between steps, held as optimizer variables.

Keras threads optimizer variables through every backend's train step (as state on JAX)
and saves them in checkpoints, so state kept there survives compilation, JAX's pure
functions and a resume alike.
"""

from __future__ import annotations

import math

import keras

from bsi_keras.train_step.core import StepOptions
from bsi_keras.train_step.noise_scale import NOISE_AVERAGES, NOISE_EPOCH_MOMENTS


class StepState:
    """The loss-dropout memory and the noise scale's moving averages and epoch moments.

    Args:
        optimizer: the model's optimizer (built here if needed).
        variables: the model's trainable variables.
        options: the step options.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        variables: list[keras.Variable],
        options: StepOptions,
    ):
        self.options = options
        self.previous_loss = self.active = None
        self.noise_state: list[keras.Variable] = []  # NOISE_AVERAGES + NOISE_EPOCH_MOMENTS
        if options.loss_dropout is None and options.noise_scale is None:
            return
        if not optimizer.built:
            optimizer.build(variables)
        if options.loss_dropout is not None:
            self.previous_loss = optimizer.add_variable(
                (), initializer=keras.initializers.Constant(math.nan), name="loss_dropout_previous"
            )
            self.active = optimizer.add_variable((), name="loss_dropout_active")
        if options.noise_scale is not None:
            self.noise_state = [
                optimizer.add_variable((), name=name)
                for name in NOISE_AVERAGES + NOISE_EPOCH_MOMENTS
            ]

    def begin_epoch(self, epoch: int) -> None:
        """Set up 0-based ``epoch``: the loss-dropout window and fresh noise-scale moments.

        The noise scale's moving averages run on across epochs; only the moments of the
        epoch's raw measurements (``gns_b_simple_raw``, the spread behind
        ``gns_b_simple_se``) start afresh.
        """
        if self.active is not None:
            self.active.assign(1.0 if self.options.loss_dropout.active(epoch) else 0.0)
        for variable in self.noise_state[len(NOISE_AVERAGES) :]:
            variable.assign(0.0)

    @staticmethod
    def index(optimizer: keras.optimizers.Optimizer, variable: keras.Variable) -> int:
        """Position of ``variable`` among the optimizer's variables (JAX's state list)."""
        return next(i for i, v in enumerate(optimizer.variables) if v is variable)
