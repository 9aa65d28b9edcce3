"""The learning rate: the schedule's, times what callbacks such as ReduceLROnPlateau left.

A callback changes the optimizer's LR directly; the ratio of the LR found to the LR last
set is kept in `RunState.lr_multiplier` and multiplies the schedule's LR from then on. A
schedule with a per-update curve (warmup, cosine, cyclic) sets the LR inside the train
step instead, at every update, and callbacks that set the LR are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from bsi_keras.checkpoint import RunState
from bsi_keras.optimizers import set_learning_rate
from bsi_keras.optimizers.learning_rate import ScheduledLearningRate
from bsi_keras.schedules import BaseSchedule, EpochPlan


def check_callbacks(schedule: BaseSchedule, callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """Refuse a callback that sets the LR when a per-update curve sets it."""
    if schedule.curve is not None and any(
        isinstance(c, keras.callbacks.ReduceLROnPlateau) for c in callbacks
    ):
        raise ValueError(
            "ReduceLROnPlateau cannot change a learning rate that a per-step curve sets "
            "at every update; drop one of them"
        )


def follow_curve(
    optimizer: keras.optimizers.Optimizer, schedule: BaseSchedule, plan: EpochPlan
) -> None:
    """Make the optimizer's LR the schedule's per-update curve (if it has one)."""
    if schedule.curve is not None:
        # Two plain numbers, not the plan: the optimizer's config is saved with the model.
        optimizer.learning_rate = ScheduledLearningRate(
            schedule, plan.num_examples, plan.drop_remainder
        )


def apply(
    optimizer: keras.optimizers.Optimizer,
    schedule: BaseSchedule,
    plan: EpochPlan,
    scheduled_lr: float,
    state: RunState,
    momentum_correction: bool,
) -> float:
    """Set the epoch's LR; return it (with a curve: the LR of the epoch's first update)."""
    if schedule.curve is not None:  # the optimizer follows the curve
        first = np.array(state.updates, dtype="float32")
        return float(schedule.lr_at_updates(first, plan))
    current = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    if state.last_lr is not None and not math.isclose(current, state.last_lr, rel_tol=1e-6):
        state.lr_multiplier *= current / state.last_lr
    lr = scheduled_lr * state.lr_multiplier
    set_learning_rate(optimizer, lr, momentum_correction)
    state.last_lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return lr
