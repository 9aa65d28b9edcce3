"""A schedule's learning rate as a Keras `LearningRateSchedule`, evaluated per update.

Per-step curves (warmup, cosine, cyclic) must change the LR inside a compiled train step;
this evaluates the schedule's `bsi_keras.schedules.Schedule.lr_function`, resolved once in
the constructor, with `keras.ops` on the optimizer's update counter.
"""

from __future__ import annotations

from typing import Any

import keras

from bsi_keras.schedules import EpochPlan, Schedule


@keras.saving.register_keras_serializable(package="bsi_keras")
class ScheduledLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The LR of ``schedule`` at update ``step`` on ``num_examples`` training examples.

    Args:
        schedule: a fixed schedule (its phases and per-step curve).
        num_examples: the training set size (it places phase boundaries in updates).
        drop_remainder: whether epochs drop their last partial batch.

    Example:

    >>> from bsi_keras import schedules
    >>> s = schedules.with_curve(schedules.constant(2, 10, 0.1),
    ...                          schedules.StepCurve(warmup_epochs=1))
    >>> lr = ScheduledLearningRate(s, num_examples=100)
    >>> [round(float(lr(t)), 3) for t in (0, 5, 10, 19)]
    [0.0, 0.05, 0.1, 0.1]
    """

    def __init__(self, schedule: Schedule, num_examples: int, drop_remainder: bool = False):
        self.schedule = schedule
        self.num_examples = num_examples
        self.drop_remainder = drop_remainder
        # Phase boundaries and curve options are worked out here, not at every update.
        self._lr_at = schedule.lr_function(EpochPlan(num_examples, drop_remainder))

    def __call__(self, step: Any) -> Any:
        return self._lr_at(keras.ops.cast(step, "float32"), keras.ops)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule.to_config(),
            "num_examples": self.num_examples,
            "drop_remainder": self.drop_remainder,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScheduledLearningRate:
        return cls(
            Schedule.from_config(config["schedule"]),
            config["num_examples"],
            config["drop_remainder"],
        )
