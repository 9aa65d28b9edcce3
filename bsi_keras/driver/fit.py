"""`fit`: run a batch-size / learning-rate schedule through ``model.fit``, like one call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bsi_keras import train_step
from bsi_keras.checkpoint import RunState
from bsi_keras.driver import bridge, feeds, loop, lr
from bsi_keras.schedules import BaseSchedule, EpochPlan, FunctionSchedule
from bsi_keras.train_step import StepOptions

ScheduleLike = BaseSchedule | Callable[[int], tuple[int, float]]


def fit(
    model: keras.Model,
    x: Any = None,
    y: Any = None,
    *,
    schedule: ScheduleLike,
    epochs: int | None = None,
    validation_data: tuple[Any, ...] | None = None,
    validation_split: float = 0.0,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
    seed: int | None = None,
    sample_weight: np.ndarray | None = None,
    class_weight: Mapping[int, float] | None = None,
    eval_batch_size: int = 1000,
    drop_remainder: bool = False,
    momentum_correction: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    augmentation: feeds.Augmentation | None = None,
    step_options: StepOptions | None = None,
    reset_optimizer: bool = False,
) -> keras.callbacks.History:
    """Train ``model`` with a batch-size / learning-rate schedule, like one ``model.fit``.

    Args:
        model: a compiled Keras model (its optimizer must have a float learning rate).
        x: training inputs: numpy arrays (or a list / dict of them); a `tf.data.Dataset`
            of known size (batched or not: it is unbatched, shuffled per epoch with a seed
            derived from ``seed`` and the epoch, and batched with the epoch's batch size);
            or a `keras.utils.PyDataset` whose ``batch_size`` attribute its ``__len__`` and
            ``__getitem__`` follow (the driver sets it every epoch; shuffling is its own).
        y: training targets (numpy inputs only).
        schedule: a schedule (`bsi_keras.schedules.BaseSchedule`: fixed, function or
            adaptive), or a function ``epoch -> (batch_size, lr)`` (then ``epochs`` is
            required).
        epochs: total epochs, for a plain-function schedule.
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight)``,
            evaluated after every epoch (logged as ``val_*``).
        validation_split: fraction of ``x``/``y`` (taken from the end, as Keras does) to
            hold out for validation when ``validation_data`` is not given.
        callbacks: Keras callbacks; they see one continuous run (see `bsi_keras.driver`).
            A `keras.callbacks.BackupAndRestore` is served by this driver's own checkpoint
            (its ``backup_dir`` becomes ``checkpoint_dir``).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch, "auto" = 1.
        seed: seed of the per-epoch data order (drawn at random and recorded if None).
        sample_weight: per-example training weights.
        class_weight: per-class loss weights, as in ``model.fit``.
        eval_batch_size: batch size of the evaluation (affects speed only, unless the model
            uses batch statistics at inference).
        drop_remainder: drop each epoch's last partial batch (floor updates, one traced
            shape per batch size) instead of training on it (ceil updates, the default).
        momentum_correction: rescale SGD's velocity when the LR changes (see
            `bsi_keras.optimizers.set_learning_rate`).
        checkpoint_dir: write a resumable checkpoint there after every epoch, and resume
            from it if one exists.
        checkpoint_every: write the checkpoint every this many epochs (and at the end).
        augmentation: ``f(x, seed, epoch) -> x`` applied to the (numpy) training inputs
            before every epoch, e.g. `bsi_keras.data.Dataset.train_augmentation`; it must be
            a pure function of its arguments so that a resumed run sees the same images.
        step_options: gradient accumulation over micro-batches and loss dropout (see
            `bsi_keras.train_step.StepOptions`); the model gets a custom train step only
            when these ask for one.
        reset_optimizer: give the optimizer a fresh state (momentum buffers, accumulators)
            at every phase change, as the reference's ``mainResetGrad.py``.

    A schedule with a per-step curve (warmup, cosine, cyclic; `bsi_keras.schedules.StepCurve`)
    sets the optimizer's learning rate to a `ScheduledLearningRate` evaluated at every
    update; callbacks that set the LR themselves (ReduceLROnPlateau) are then refused.

    Returns:
        A `keras.callbacks.History` with one entry per epoch of the whole schedule; its
        ``status`` attribute says how the run ended: ``"finished"``, ``"stopped"`` (by a
        callback such as EarlyStopping), or ``"diverged"`` (non-finite loss).

    Raises:
        TrainingInterrupted: on SIGINT/SIGTERM, after dropping the epoch in progress.

    Example:

    >>> import keras
    >>> from bsi_keras import schedules, data, models
    >>> ds = data.synthetic(400, (28, 28, 1))
    >>> model = models.get_model("mnist_cnn")
    >>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    >>> s = schedules.increase_bs(epochs=2, batch_size=50, lr=0.05, milestones=[1], factor=2)
    >>> h = fit(model, ds.x_train, ds.y_train, schedule=s, verbose=0, seed=0)
    >>> h.history["batch_size"], h.history["updates"]  # Keras logs numbers as floats
    ([50.0, 100.0], [8.0, 12.0])
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"fit trains a keras.Model, got {type(model).__name__}")
    if getattr(model, "optimizer", None) is None:
        raise ValueError("compile the model before calling bsi_keras.fit")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    schedule = _as_schedule(schedule, epochs)
    callbacks, backup = bridge.take_backup_and_restore(list(callbacks or []))
    lr.check_callbacks(schedule, callbacks)
    feed = feeds.training_feed(x, y, sample_weight, augmentation, class_weight)
    if validation_data is not None:
        validation_data = tuple(validation_data)
    elif validation_split:
        validation_data = feed.split(validation_split)
    plan = EpochPlan(feed.num_examples, drop_remainder)
    _check_batch_sizes(schedule, plan)
    if backup is not None:
        checkpoint_dir = checkpoint_dir or backup.backup_dir
    run = loop.Run(
        model=model,
        schedule=schedule,
        feed=feed,
        plan=plan,
        validation=feeds.ValidationFeed(validation_data, eval_batch_size)
        if validation_data is not None
        else None,
        callbacks=callbacks,
        verbose=1 if verbose == "auto" else int(verbose),
        class_weight=class_weight,
        momentum_correction=momentum_correction,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        checkpoint_every=checkpoint_every,
        delete_checkpoint_at_end=bool(backup and backup.delete_checkpoint),
        step_options=step_options,
        reset_optimizer=reset_optimizer,
        accumulate=isinstance(feed, feeds.ArrayFeed)
        and train_step.accumulates(model, step_options),
    )
    return loop.train(run, RunState.new(seed))


def _as_schedule(schedule: ScheduleLike, epochs: int | None) -> BaseSchedule:
    if isinstance(schedule, BaseSchedule):
        if epochs is not None and epochs != schedule.epochs:
            raise ValueError(f"epochs={epochs} contradicts the schedule's {schedule.epochs}")
        return schedule
    if callable(schedule):
        if epochs is None:
            raise ValueError("a function schedule needs epochs=...")
        return FunctionSchedule(schedule, epochs)
    raise TypeError(f"schedule must be a Schedule or a function, got {type(schedule).__name__}")


def _check_batch_sizes(schedule: BaseSchedule, plan: EpochPlan) -> None:
    for setting in schedule.planned():
        if setting.batch_size > plan.num_examples:
            raise ValueError(
                f"epoch {setting.epoch + 1} asks for batch size {setting.batch_size}, but "
                f"the training set has only {plan.num_examples} examples; cap the "
                "schedule's batch size (max_batch_size / --max)"
            )
