"""The callback bridge: one ``model.fit`` call per epoch, one run for the user's callbacks.

The run-wide `keras.callbacks.CallbackList` gets ``on_train_begin``/``on_train_end`` once
and global epoch numbers; a `Bridge` passes each inner ``fit`` call's events to it and
times the call's executions, from which `CompileClock` keeps the compile time apart.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

from bsi_keras.runtime import ahead_of_time
from bsi_keras.train_step import keras_private


class Bridge(keras.callbacks.Callback):
    """Passes one inner ``fit`` call's events to the run-wide callbacks, and times it.

    Epoch begin and batch events go through at once; the epoch-end logs are kept so the
    driver can add evaluation and schedule fields before the run-wide ``on_epoch_end``.
    Batch-end events are forwarded only when a run-wide callback listens to them, so that
    Keras keeps dispatching steps asynchronously otherwise.

    Args:
        outer: the run-wide callbacks.
        steps: the epoch's train steps.
    """

    def __init__(self, outer: keras.callbacks.CallbackList, steps: int):
        super().__init__()
        self.outer = outer
        self.steps = steps
        self.begins: list[tuple[int, float]] = []
        self.epoch_logs: dict[str, Any] = {}
        self.started = self.ended = 0.0
        if any(listens(c, ("on_train_batch_end", "on_batch_end")) for c in outer.callbacks):
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


class CompileClock:
    """Epoch training seconds with the estimated compile time kept apart.

    A step that runs a batch shape for the first time includes tracing and compiling; the
    excess of its call of the train function over the calls' median time per step (times
    the call's steps) is counted as compile time.
    """

    def __init__(self) -> None:
        self.traced_shapes: set[int] = set()

    def fields(self, bridge: Bridge, sizes: Sequence[int], per_execution: int) -> dict:
        """``epoch_seconds`` and ``compile_seconds`` of an epoch of batches of ``sizes``."""
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


class TraceCounter:
    """How many times the train step was traced (compiled) since the last epoch's row.

    Traces in another thread than the one that made the counter (the driver's) are the
    ahead-of-time compilations of `driver.ahead`, counted apart in ``ahead``. With
    ``keep_signature``, ``signature`` holds the shapes and dtypes of the last trace's
    arguments (`runtime.ahead_of_time.signature_of`).
    """

    def __init__(self) -> None:
        self.total = self.reported = self.ahead = 0
        self.thread = threading.get_ident()
        self.keep_signature = False
        self.signature: tuple | None = None

    def fields(self) -> dict[str, int]:
        """``train_traces`` of the epoch just trained (nothing where steps run eagerly)."""
        if keras.backend.backend() not in ("tensorflow", "jax"):
            return {}
        traces, self.reported = self.total - self.reported, self.total
        return {"train_traces": traces}


@contextmanager
def count_traces(model: keras.Model) -> Iterator[TraceCounter]:
    """Count the traces of ``model.train_step`` inside the block.

    TensorFlow and JAX run the step's Python body only while tracing it into a compiled
    function, once per new input shape (or signature): each run of the body is one trace.
    """
    counter = TraceCounter()
    own = vars(model).get("train_step")  # an installed custom step, else the class's
    step = model.train_step

    def counting(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == counter.thread:
            counter.total += 1
        else:
            counter.ahead += 1
        if counter.keep_signature:
            counter.signature = ahead_of_time.signature_of(args)
        return step(*args, **kwargs)

    model.train_step = counting
    model.train_function = None
    try:
        yield counter
    finally:
        if own is None:
            del model.train_step
        else:
            model.train_step = own
        model.train_function = None


def end_epoch(
    outer: keras.callbacks.CallbackList,
    history: keras.callbacks.History,
    epoch: int,
    row: Mapping[str, Any],
) -> None:
    """The run-wide ``on_epoch_end`` of a `RunState` row, text fields kept apart.

    Keras's progress bar and TensorBoard average or plot every value they get, so the
    callbacks get the row's numbers only. Its text fields (``schedule_reason``) go first to
    callbacks with an ``on_epoch_text(epoch, text)`` method (the run folder's log), and to
    the run's `History` after.
    """
    text = {k: v for k, v in row.items() if isinstance(v, str)}
    for callback in outer.callbacks:
        if hasattr(callback, "on_epoch_text"):
            callback.on_epoch_text(epoch, text)
    outer.on_epoch_end(epoch, numbers(row))
    for key, value in text.items():
        history.history.setdefault(key, []).append(value)


def numbers(logs: Mapping[str, Any]) -> dict[str, Any]:
    """``logs`` without its text fields: what Keras's callbacks can take."""
    return {k: v for k, v in logs.items() if not isinstance(v, str)}


def take_backup_and_restore(
    callbacks: Sequence[keras.callbacks.Callback],
) -> tuple[list[keras.callbacks.Callback], keras.callbacks.BackupAndRestore | None]:
    """Remove a BackupAndRestore callback: the driver's checkpoint does its job."""
    backups = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
    if len(backups) > 1:
        raise ValueError("pass at most one BackupAndRestore callback")
    rest = [c for c in callbacks if not isinstance(c, keras.callbacks.BackupAndRestore)]
    return rest, (backups[0] if backups else None)


def listens(callback: keras.callbacks.Callback, hooks: Sequence[str]) -> bool:
    """Whether ``callback`` overrides any of the ``hooks``."""
    return any(not keras_private.is_default_hook(callback, hook) for hook in hooks)
