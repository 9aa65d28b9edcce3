"""The schedule driver: `fit` runs a batch-size / learning-rate schedule through `model.fit`.

Keras's ``fit`` takes one batch size. `fit` here calls ``model.fit`` once per epoch with that
epoch's batch size and learning rate, and makes the calls look like one run to the user's
callbacks: ``on_train_begin``/``on_train_end`` once, global epoch numbers, one `History`.
Around it, it times every epoch, counts parameter updates, evaluates, stops a diverging
run, and (with ``checkpoint_dir``) checkpoints after every epoch so a killed run resumes
exactly where it stopped.
"""

from __future__ import annotations

import itertools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bsi_keras import checkpoint, train_step
from bsi_keras.optimizers import momentum_of, reset_state, set_learning_rate
from bsi_keras.optimizers.learning_rate import ScheduledLearningRate
from bsi_keras.schedules import BaseSchedule, EpochSetting, FunctionSchedule, noise_scale
from bsi_keras.train_step import StepOptions, tf_data

ScheduleLike = BaseSchedule | Callable[[int], tuple[int, float]]

# On TensorFlow the driver runs this many train steps per call of Keras's train function
# in epochs of at least MIN_EXECUTIONS_PER_EPOCH such calls (see
# `_ScheduleRun._steps_per_execution`).
STEPS_PER_EXECUTION = 32
MIN_EXECUTIONS_PER_EPOCH = 8


class TrainingInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM; finished epochs are kept.

    Attributes:
        signum: the signal that stopped the run.
        epoch: 0-based epoch that was in progress (and dropped).
        history: the finished epochs' history.
        run_dir: the run folder, where one is known (set by `bsi_keras.experiment.train`).
    """

    def __init__(self, signum: int, epoch: int):
        name = signal.Signals(signum).name
        super().__init__(f"{name} received during epoch {epoch + 1}; that epoch was dropped")
        self.signum = signum
        self.epoch = epoch
        self.history: keras.callbacks.History | None = None
        self.run_dir: Path | None = None


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
    augmentation: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
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
        callbacks: Keras callbacks; they see one continuous run (see module docstring).
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
    run = _ScheduleRun(
        model,
        _as_schedule(schedule, epochs),
        _training_data(x, y, sample_weight, augmentation, class_weight),
        callbacks=list(callbacks or []),
        verbose=1 if verbose == "auto" else int(verbose),
        seed=seed,
        class_weight=class_weight,
        eval_batch_size=eval_batch_size,
        drop_remainder=drop_remainder,
        momentum_correction=momentum_correction,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        step_options=step_options,
        reset_optimizer=reset_optimizer,
    )
    run.set_validation(validation_data, validation_split)
    return run.run()


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


def _training_data(
    x: Any,
    y: Any,
    sample_weight: Any,
    augmentation: Callable | None,
    class_weight: Mapping[int, float] | None,
) -> _ArrayData | _TFDatasetData | _PyDatasetData:
    if isinstance(x, keras.utils.PyDataset):
        return _PyDatasetData(x)
    if type(x).__module__.startswith("tensorflow") and hasattr(x, "cardinality"):
        return _TFDatasetData(x)
    # Keras weighs classes differently for datasets than for arrays: keep arrays then.
    return _ArrayData(x, y, sample_weight, augmentation, tensorflow_batches=class_weight is None)


@dataclass
class _ArrayData:
    """Training arrays, served in a fresh order (and augmentation) every epoch.

    On TensorFlow, numeric numpy arrays become tensors, and every epoch is a dataset that
    gathers its batches (``tensorflow_batches``, see `_tensorflow_batches`): without
    augmentation from tensors made once, instead of a permuted copy that ``model.fit``
    copies again. Permuted (and augmented) numpy arrays are prepared one epoch ahead in a
    background thread (`_Background`), so that the accelerator does not wait for the host.
    """

    x: Any
    y: Any
    sample_weight: np.ndarray | None = None
    augmentation: Callable[[np.ndarray, int, int], np.ndarray] | None = None
    tensorflow_batches: bool = True
    num_examples: int = field(init=False)
    tensors: Any = field(default=None, init=False, repr=False)  # TensorFlow copies, made once
    ahead: tuple[tuple[int, ...], _Background] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.x is None:
            raise ValueError("fit needs training inputs x")
        arrays = keras.tree.flatten((self.x, self.y, self.sample_weight))
        sizes = {len(a) for a in arrays if a is not None}
        if len(sizes) != 1:
            raise ValueError(f"x, y and sample_weight differ in length: {sorted(sizes)}")
        self.num_examples = sizes.pop()
        self.tensorflow_batches = self.tensorflow_batches and tf_data.applies_to(
            (self.x, self.y, self.sample_weight)
        )

    def split(self, fraction: float) -> tuple[Any, ...]:
        """Hold out the last ``fraction`` of the examples (Keras's validation_split)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
        cut = self.num_examples - int(self.num_examples * fraction)
        held_out = _map_arrays(lambda a: a[cut:], (self.x, self.y))
        self.x, self.y, self.sample_weight = _map_arrays(
            lambda a: a[:cut], (self.x, self.y, self.sample_weight)
        )
        self.num_examples = cut
        return held_out

    def epoch(self, seed: int, epoch: int, batch_size: int, drop_remainder: bool) -> dict:
        """``model.fit`` arguments for epoch ``epoch`` (a pure function of seed and epoch)."""
        kept = self.num_examples
        if drop_remainder:
            kept -= kept % batch_size
        if self.tensorflow_batches and self.augmentation is None:
            if self.tensors is None:
                self.tensors = tf_data.as_tensors((self.x, self.y, self.sample_weight))
            order = self._order(seed, epoch)[:kept]
            return {"x": tf_data.batches(self.tensors, order, batch_size)}
        arrays = self._arrays(seed, epoch, kept)
        following = (seed, epoch + 1, kept)  # guessing that the batch size stays
        self.ahead = (following, _Background(lambda: self._prepare(*following)))
        if self.tensorflow_batches:
            return {"x": tf_data.batches(tf_data.as_tensors(arrays), np.arange(kept), batch_size)}
        x, y, sample_weight = arrays
        return {"x": x, "y": y, "sample_weight": sample_weight, "batch_size": batch_size}

    def _order(self, seed: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(self.num_examples)

    def _arrays(self, seed: int, epoch: int, kept: int) -> tuple[Any, Any, Any]:
        """The epoch's arrays: prepared ahead if they were, else now."""
        if self.ahead is not None and self.ahead[0] == (seed, epoch, kept):
            return self.ahead[1].result()
        return self._prepare(seed, epoch, kept)

    def _prepare(self, seed: int, epoch: int, kept: int) -> tuple[Any, Any, Any]:
        """The first ``kept`` examples in the epoch's order, augmented."""
        order = self._order(seed, epoch)[:kept]
        x, y, sample_weight = _map_arrays(
            lambda a: np.take(a, order, axis=0), (self.x, self.y, self.sample_weight)
        )
        if self.augmentation is not None:
            x = self.augmentation(x, seed, epoch)
        return x, y, sample_weight


class _Background:
    """A function of no arguments running in a daemon thread (a run may end without it)."""

    def __init__(self, function: Callable[[], Any]):
        self.outcome: tuple[bool, Any] | None = None
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self.thread.start()

    def _run(self, function: Callable[[], Any]) -> None:
        try:
            self.outcome = (True, function())
        except BaseException as error:  # re-raised by `result` in the caller's thread
            self.outcome = (False, error)

    def result(self) -> Any:
        """The function's value (waiting for it), or its exception raised here."""
        self.thread.join()
        succeeded, value = self.outcome
        if not succeeded:
            raise value
        return value


@dataclass
class _TFDatasetData:
    """A `tf.data.Dataset` of known size, rebatched every epoch."""

    dataset: Any
    num_examples: int = field(init=False)

    def __post_init__(self) -> None:
        leaves = keras.tree.flatten(self.dataset.element_spec)
        if any(leaf.shape.rank and leaf.shape[0] is None for leaf in leaves):
            self.dataset = self.dataset.unbatch()  # batched: its batches are redone per epoch
        self.num_examples = int(self.dataset.cardinality())
        if self.num_examples == -1:  # infinite
            raise ValueError("the tf.data.Dataset repeats forever; pass one epoch of data")
        if self.num_examples < 0:  # unknown (e.g. after unbatch): count it once
            import tensorflow as tf

            self.num_examples = int(self.dataset.reduce(0, lambda count, _: count + 1))
            # Keras runs one step too many on a dataset of unknown size.
            self.dataset = self.dataset.apply(
                tf.data.experimental.assert_cardinality(self.num_examples)
            )

    def split(self, fraction: float) -> tuple[Any, ...]:
        raise ValueError("validation_split needs numpy arrays; pass validation_data instead")

    def epoch(self, seed: int, epoch: int, batch_size: int, drop_remainder: bool) -> dict:
        epoch_seed = int(np.random.default_rng([seed, epoch]).integers(2**31))
        ordered = self.dataset.shuffle(self.num_examples, seed=epoch_seed)
        return {"x": ordered.batch(batch_size, drop_remainder=drop_remainder).prefetch(2)}


@dataclass
class _PyDatasetData:
    """A `keras.utils.PyDataset` whose ``batch_size`` attribute the driver sets."""

    dataset: keras.utils.PyDataset
    num_examples: int = field(init=False)

    def __post_init__(self) -> None:
        if not hasattr(self.dataset, "batch_size"):
            raise ValueError(
                "a PyDataset needs a batch_size attribute (used by its __len__ and "
                "__getitem__) so the driver can change the batch size"
            )
        self.num_examples = getattr(self.dataset, "num_examples", None) or (
            len(self.dataset) * self.dataset.batch_size
        )

    def split(self, fraction: float) -> tuple[Any, ...]:
        raise ValueError("validation_split needs numpy arrays; pass validation_data instead")

    def epoch(self, seed: int, epoch: int, batch_size: int, drop_remainder: bool) -> dict:
        self.dataset.batch_size = batch_size
        return {"x": self.dataset}


class _Bridge(keras.callbacks.Callback):
    """Passes one inner ``fit`` call's events to the run-wide callbacks, and times it.

    Epoch begin and batch events go through at once; the epoch-end logs are kept so the
    driver can add evaluation and schedule fields before the run-wide ``on_epoch_end``.
    Batch-end events are forwarded only when a run-wide callback listens to them, so that
    Keras keeps dispatching steps asynchronously otherwise.
    """

    def __init__(self, outer: keras.callbacks.CallbackList, forward_batch_end: bool, steps: int):
        super().__init__()
        self.outer = outer
        self.steps = steps
        self.begins: list[tuple[int, float]] = []
        self.epoch_logs: dict[str, Any] | None = None
        self.started = self.ended = 0.0
        if forward_batch_end:
            self.on_train_batch_end = self._forward_batch_end

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()
        self.outer.on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.begins.append((batch, time.perf_counter()))
        self.outer.on_train_batch_begin(batch, logs)

    def _forward_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # Keras numbers a call of several steps by its last step, past the epoch's last one
        # for a short final call.
        self.outer.on_train_batch_end(min(batch, self.steps - 1), logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.ended = time.perf_counter()
        self.epoch_logs = dict(logs or {})

    def executions(self, steps: int, per_execution: int) -> list[tuple[int, int, float]]:
        """``(first step, end step, seconds)`` of every call of the train function.

        A call's seconds run from its begin to the next one's (the last one's to the epoch
        end); the list is empty when the epoch stopped before its last step.
        """
        if not self.begins or self.begins[-1][0] + per_execution < steps:
            return []
        marks = [*self.begins, (steps, self.ended)]
        return [(a, b, t_b - t_a) for (a, t_a), (b, t_b) in itertools.pairwise(marks)]


class _ScheduleRun:
    """The state of one scheduled training run; `fit` builds one and calls `run`."""

    def __init__(
        self,
        model: keras.Model,
        schedule: BaseSchedule,
        data: _ArrayData | _TFDatasetData | _PyDatasetData,
        callbacks: list[keras.callbacks.Callback],
        verbose: int,
        seed: int | None,
        class_weight: Mapping[int, float] | None,
        eval_batch_size: int,
        drop_remainder: bool,
        momentum_correction: bool,
        checkpoint_dir: str | Path | None,
        checkpoint_every: int = 1,
        step_options: StepOptions | None = None,
        reset_optimizer: bool = False,
    ):
        if model.optimizer is None:
            raise ValueError("compile the model before calling fit")
        self.model = model
        self.schedule = schedule
        self.data = data
        self.verbose = verbose
        self.class_weight = class_weight
        self.eval_batch_size = eval_batch_size
        self.drop_remainder = drop_remainder
        self.momentum_correction = momentum_correction
        self.validation: tuple[Any, ...] | None = None
        self.validation_tensors: tuple[Any, ...] | None = None  # made at the first evaluation
        self.callbacks, backup = _take_backup_and_restore(callbacks)
        self.checkpoint_dir = (
            Path(checkpoint_dir or backup.backup_dir) if (checkpoint_dir or backup) else None
        )
        self.delete_checkpoint_at_end = bool(backup and backup.delete_checkpoint)
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.checkpoint_every = checkpoint_every
        self.step_options = step_options
        self.reset_optimizer = reset_optimizer
        self.curve = getattr(schedule, "curve", None)
        if self.curve is not None and any(
            isinstance(c, keras.callbacks.ReduceLROnPlateau) for c in self.callbacks
        ):
            raise ValueError(
                "ReduceLROnPlateau cannot change a learning rate that a per-step curve sets "
                "at every update; drop one of them"
            )
        self.history = keras.callbacks.History()
        self.state: dict[str, Any] = {
            "next_epoch": 0,
            "rows": [],
            "seed": int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed,
            "lr_multiplier": 1.0,
            "last_lr": None,
        }
        self.traced_shapes: set[int] = set()
        self.multi_step = False  # whether `_steps_per_execution` may run several steps
        self.multi_step_function: Any = None  # the train function of STEPS_PER_EXECUTION

    def set_validation(self, validation_data: tuple | None, validation_split: float) -> None:
        """Use ``validation_data``, or hold out ``validation_split`` of the training data."""
        if validation_data is not None:
            self.validation = tuple(validation_data)
        elif validation_split:
            self.validation = self.data.split(validation_split)

    def run(self) -> keras.callbacks.History:
        """Resume if a checkpoint exists, then train the remaining epochs."""
        self._check_batch_sizes()
        if self.curve is not None:
            self.model.optimizer.learning_rate = ScheduledLearningRate(
                self.schedule, self.data.num_examples, self.drop_remainder
            )
        with train_step.install(self.model, self.step_options) as step_state:
            self.step_state = step_state
            if self.checkpoint_dir and checkpoint.checkpoint_path(self.checkpoint_dir).is_file():
                self.state = checkpoint.load(self.checkpoint_dir, self.model)
            return self._train()

    def _train(self) -> keras.callbacks.History:
        outer = keras.callbacks.CallbackList(
            [*self.callbacks, self.history],
            add_progbar=self.verbose != 0,
            model=self.model,
            verbose=self.verbose,
            epochs=self.schedule.epochs,
            steps=None,
        )
        forward_batch_end = any(
            _listens(c, ("on_train_batch_end", "on_batch_end")) for c in outer.callbacks
        )
        self.multi_step = self._may_run_several_steps(outer)
        outer.on_train_begin()
        for epoch, row in enumerate(self.state["rows"]):
            self.history.on_epoch_end(epoch, row)
        self.history.status = "finished"
        logs: dict[str, Any] = {}
        with _stop_on_signals(self.model) as received:
            try:
                for epoch in range(self.state["next_epoch"], self.schedule.epochs):
                    logs = self._run_epoch(epoch, outer, forward_batch_end, received)
                    if received and epoch + 1 < self.schedule.epochs:
                        raise TrainingInterrupted(received[0], epoch + 1)
                    if self.history.status != "finished" or self.model.stop_training:
                        break
            except TrainingInterrupted as interrupted:
                self.history.status = "interrupted"
                interrupted.history = self.history
                raise
        outer.on_train_end(logs)
        if self.history.status == "finished" and self.model.stop_training:
            self.history.status = "stopped"
        if self.delete_checkpoint_at_end and self.history.status != "diverged":
            checkpoint.checkpoint_path(self.checkpoint_dir).unlink(missing_ok=True)
        return self.history

    def _check_batch_sizes(self) -> None:
        for setting in self.schedule.planned():
            if setting.batch_size > self.data.num_examples:
                raise ValueError(
                    f"epoch {setting.epoch + 1} asks for batch size {setting.batch_size}, but "
                    f"the training set has only {self.data.num_examples} examples; cap the "
                    "schedule's batch size (max_batch_size / --max)"
                )

    def _run_epoch(
        self,
        epoch: int,
        outer: keras.callbacks.CallbackList,
        forward_batch_end: bool,
        received: list[int],
    ) -> dict[str, Any]:
        if received:
            raise TrainingInterrupted(received[0], epoch)
        setting = self.schedule.at(epoch, self.state["rows"])
        rows = self.state["rows"]
        if self.reset_optimizer and rows and rows[-1]["phase"] != setting.phase + 1:
            reset_state(self.model.optimizer, self.model.trainable_variables)
        lr = self._apply_learning_rate(setting.lr)
        if self.step_state is not None:
            self.step_state.begin_epoch(epoch)
        inputs = self.data.epoch(self.state["seed"], epoch, setting.batch_size, self.drop_remainder)
        examples = self.data.num_examples
        if self.drop_remainder:
            examples -= examples % setting.batch_size
        steps = math.ceil(examples / setting.batch_size)
        outer.set_params({"verbose": self.verbose, "epochs": self.schedule.epochs, "steps": steps})
        bridge = _Bridge(outer, forward_batch_end, steps)
        updates_before = self._updates()
        per_execution = self._steps_per_execution(steps)
        with self._train_function(per_execution):
            self.model.fit(
                **inputs,
                class_weight=self.class_weight,
                initial_epoch=epoch,
                epochs=epoch + 1,
                shuffle=False,
                verbose=0,
                callbacks=[bridge],
            )
        if received:
            raise TrainingInterrupted(received[0], epoch)
        logs = {
            **bridge.epoch_logs,
            **self._evaluate(),
            **self._schedule_fields(setting, lr, examples),
            **self._timing_fields(bridge, setting.batch_size, examples, per_execution),
            "epoch_updates": self._updates() - updates_before,
        }
        logs["updates"] = self._cumulative_updates() + logs["epoch_updates"]
        diverged = not math.isfinite(float(logs.get("loss", 0.0)))
        outer.on_epoch_end(epoch, logs)
        self.state["rows"].append(_jsonable(logs))
        if diverged:
            self.history.status = "diverged"
            print(
                f"Training diverged: the loss became {logs['loss']} in epoch {epoch + 1} "
                f"(batch size {setting.batch_size}, learning rate {lr:g}). Finished epochs "
                "and the last good checkpoint are kept; try a smaller learning rate."
            )
        else:
            self.state["next_epoch"] = epoch + 1
            last = epoch + 1 == self.schedule.epochs or self.model.stop_training
            if last or (epoch + 1) % self.checkpoint_every == 0:
                self._save_checkpoint()
        return logs

    def _may_run_several_steps(self, outer: keras.callbacks.CallbackList) -> bool:
        """Whether several train steps per call of the train function change nothing.

        Keras's TensorFlow trainer returns to Python after every step, which costs about
        2 ms: as much as a whole step of the MNIST CNN at batch 100. Several steps per call
        save it, but callbacks then see batch events once per call only, so the driver does
        it only on TensorFlow, for a model compiled with Keras's default of one step, when
        no callback but the progress bar listens to batches.
        """
        hooks = ("on_train_batch_begin", "on_batch_begin", "on_train_batch_end", "on_batch_end")
        return (
            keras.backend.backend() == "tensorflow"
            and self.model.steps_per_execution == 1
            and not any(
                _listens(c, hooks)
                for c in outer.callbacks
                if not isinstance(c, keras.callbacks.ProgbarLogger)
            )
        )

    def _steps_per_execution(self, steps: int) -> int:
        """Train steps per call of the train function in an epoch of ``steps`` steps.

        STEPS_PER_EXECUTION where `_may_run_several_steps` allowed it and the epoch is long:
        Keras traces a multi-step function twice (about 0.3 s each for a small model), which
        pays off in long epochs only, and these keep enough calls per epoch to tell the
        compile time apart (see `_timing_fields`). Otherwise the model's own setting.
        """
        if self.multi_step and steps >= STEPS_PER_EXECUTION * MIN_EXECUTIONS_PER_EPOCH:
            return STEPS_PER_EXECUTION
        return self.model.steps_per_execution

    @contextmanager
    def _train_function(self, per_execution: int) -> Iterator[None]:
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
        model.train_function = self.multi_step_function
        try:
            yield
        finally:
            self.multi_step_function = model.train_function
            model.train_function, model.steps_per_execution = own

    def _apply_learning_rate(self, scheduled_lr: float) -> float:
        """Set the schedule's LR, keeping any change a callback made as a multiplier.

        A callback such as ReduceLROnPlateau changes the optimizer's LR directly; the ratio
        of the LR found to the LR last set is kept as a multiplier on the schedule's LR.
        """
        if self.curve is not None:  # the optimizer follows the curve; report its first LR
            first = np.array(self._cumulative_updates(), dtype="float32")
            return float(
                self.schedule.lr_at_updates(first, self.data.num_examples, self.drop_remainder)
            )
        optimizer = self.model.optimizer
        current = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        last = self.state["last_lr"]
        if last is not None and not math.isclose(current, last, rel_tol=1e-6):
            self.state["lr_multiplier"] *= current / last
        lr = scheduled_lr * self.state["lr_multiplier"]
        set_learning_rate(optimizer, lr, self.momentum_correction)
        self.state["last_lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        return lr

    def _evaluate(self) -> dict[str, float]:
        if self.validation is None:
            return {}
        results = self.model.evaluate(**self._validation_inputs(), verbose=0, return_dict=True)
        return {f"val_{name}": float(value) for name, value in results.items()}

    def _validation_inputs(self) -> dict[str, Any]:
        """``model.evaluate`` arguments: on TensorFlow, batches of tensors made once (the
        batches ``model.evaluate`` would make of the arrays, without copying them again)."""
        if not tf_data.applies_to(self.validation):
            x, y, *weights = self.validation
            weight = weights[0] if weights else None
            return {"x": x, "y": y, "sample_weight": weight, "batch_size": self.eval_batch_size}
        if self.validation_tensors is None:
            self.validation_tensors = tf_data.as_tensors(self.validation)
        size = len(keras.tree.flatten(self.validation)[0])
        order = np.arange(size)
        return {"x": tf_data.batches(self.validation_tensors, order, self.eval_batch_size)}

    def _schedule_fields(self, setting: EpochSetting, lr: float, examples: int) -> dict:
        momentum = momentum_of(self.model.optimizer)
        fields = {
            "phase": setting.phase + 1,
            "batch_size": setting.batch_size,
            "learning_rate": lr,
            "noise_scale": noise_scale(lr, examples, setting.batch_size, momentum),
        }
        if setting.reason:
            fields["schedule_reason"] = setting.reason
        return fields

    def _timing_fields(
        self, bridge: _Bridge, batch_size: int, examples: int, per_execution: int
    ) -> dict:
        """Epoch training seconds with the estimated compile time kept apart.

        A step that runs a batch shape for the first time includes tracing and compiling;
        the excess of its call of the train function over the calls' median time per step
        (times the call's steps) is counted as compile time.
        """
        sizes = [batch_size] * (examples // batch_size)
        if examples % batch_size:
            sizes.append(examples % batch_size)
        executions = bridge.executions(len(sizes), per_execution)
        compile_seconds = 0.0
        if len(executions) > 1:
            typical = float(
                np.median([seconds / (end - start) for start, end, seconds in executions])
            )
            for start, end, seconds in executions:
                if any(size not in self.traced_shapes for size in sizes[start:end]):
                    compile_seconds += max(0.0, seconds - typical * (end - start))
        self.traced_shapes.update(sizes)
        total = bridge.ended - bridge.started
        return {"epoch_seconds": total - compile_seconds, "compile_seconds": compile_seconds}

    def _updates(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _cumulative_updates(self) -> int:
        rows = self.state["rows"]
        return int(rows[-1]["updates"]) if rows else 0

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is not None:
            checkpoint.save(self.checkpoint_dir, self.model, self.state)


def _take_backup_and_restore(
    callbacks: list[keras.callbacks.Callback],
) -> tuple[list[keras.callbacks.Callback], keras.callbacks.BackupAndRestore | None]:
    """Remove a BackupAndRestore callback: the driver's checkpoint does its job."""
    backups = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
    if len(backups) > 1:
        raise ValueError("pass at most one BackupAndRestore callback")
    rest = [c for c in callbacks if not isinstance(c, keras.callbacks.BackupAndRestore)]
    return rest, (backups[0] if backups else None)


@contextmanager
def _stop_on_signals(model: keras.Model) -> Iterator[list[int]]:
    """While training, SIGINT/SIGTERM stop after the current step instead of killing.

    Yields the list that receives the signal numbers; outside the main thread signals
    cannot be caught, and nothing is installed.
    """
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if received:  # a second signal: the user wants out now
            raise KeyboardInterrupt
        received.append(signum)
        model.stop_training = True

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _listens(callback: keras.callbacks.Callback, hooks: Sequence[str]) -> bool:
    """Whether ``callback`` overrides any of the ``hooks`` (Keras marks the defaults)."""
    return any(not getattr(getattr(callback, hook), "_is_default", False) for hook in hooks)


def _map_arrays(fn: Callable[[Any], Any], structure: Any) -> Any:
    """Apply ``fn`` to every array of a nested structure, leaving None alone."""
    return keras.tree.map_structure(lambda a: None if a is None else fn(a), structure)


def _jsonable(logs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, str)) else float(v)) for k, v in logs.items()}
