"""The multi-step execution trick: several train steps per call of Keras's train function.

Keras's TensorFlow trainer returns to Python after every step, which costs about 0.44 ms
(`bench/step_profile.py` on this repository's 2-core CPU; an eighth of a whole MNIST-CNN step
at batch 100). Several steps per call save it, but
callbacks then see batch events once per call only, so the driver does it only on
TensorFlow, for a model compiled with Keras's default of one step, when no callback but the
progress bar listens to batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import keras

from bsi_keras.driver.bridge import listens

# Steps per call of the train function, in epochs of at least MIN_EXECUTIONS_PER_EPOCH calls.
STEPS_PER_EXECUTION = 32
MIN_EXECUTIONS_PER_EPOCH = 8

BATCH_HOOKS = ("on_train_batch_begin", "on_batch_begin", "on_train_batch_end", "on_batch_end")


class MultiStep:
    """Chooses each epoch's steps per execution and lends the model that train function.

    Args:
        model: the compiled model.
        callbacks: the run-wide callbacks (the progress bar included).
    """

    def __init__(self, model: keras.Model, callbacks: Sequence[keras.callbacks.Callback]):
        self.model = model
        self.allowed = may_run_several_steps(model, callbacks)
        self.function: Any = None  # the train function of STEPS_PER_EXECUTION, traced once

    def steps_per_execution(self, steps: int) -> int:
        """Train steps per call of the train function in an epoch of ``steps`` steps.

        STEPS_PER_EXECUTION where allowed and the epoch is long: Keras traces a multi-step
        function twice (about 0.3 s each for a small model), which pays off in long epochs
        only, and these keep enough calls per epoch to tell the compile time apart (see
        `bridge.CompileClock`). Otherwise the model's own setting.
        """
        if self.allowed and steps >= STEPS_PER_EXECUTION * MIN_EXECUTIONS_PER_EPOCH:
            return STEPS_PER_EXECUTION
        return self.model.steps_per_execution

    def function_for(self, steps: int) -> Any:
        """The train function an epoch of ``steps`` steps will call (None: not made yet)."""
        if self.steps_per_execution(steps) == self.model.steps_per_execution:
            return self.model.train_function
        return self.function

    @contextmanager
    def train_function(self, per_execution: int) -> Iterator[None]:
        """Give the model the train function of ``per_execution`` steps for one ``fit`` call.

        The multi-step function is kept for the rest of the run, so that it is traced once;
        the model's own function and setting are restored after the call.
        """
        model = self.model
        own = model.train_function, model.steps_per_execution
        if per_execution == own[1]:
            yield
            return
        model.steps_per_execution = per_execution
        model.train_function = self.function
        try:
            yield
        finally:
            self.function = model.train_function
            model.train_function, model.steps_per_execution = own


def may_run_several_steps(
    model: keras.Model, callbacks: Sequence[keras.callbacks.Callback]
) -> bool:
    """Whether several train steps per call of the train function change nothing."""
    return (
        keras.backend.backend() == "tensorflow"
        and model.steps_per_execution == 1
        and not any(
            listens(c, BATCH_HOOKS)
            for c in callbacks
            if not isinstance(c, keras.callbacks.ProgbarLogger)
        )
    )
