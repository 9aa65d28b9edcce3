"""One experiment: a model, a dataset and a schedule, trained into a run folder.

`train` is what the command line and the notebooks call: it compiles the model, creates
(or reopens, to resume) the run folder, runs `bsi_keras.driver.fit` with the run folder's
log and checkpoint, and writes ``summary.json`` however the run ends. The run folder is
locked (`bsi_keras.locks.FolderLock`) while it trains: a second process is refused. Of
several processes training one run together, process 0 writes the run folder
(`bsi_keras.runtime.distribution.process_folder`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from bsi_keras import checkpoint
from bsi_keras.data import Dataset
from bsi_keras.driver import TrainingInterrupted, fit
from bsi_keras.locks import FolderLock
from bsi_keras.run_folder import RunFolder, RunFolderError
from bsi_keras.runtime.distribution import process_folder
from bsi_keras.schedules import BaseSchedule


def train(
    model: keras.Model,
    dataset: Dataset,
    schedule: BaseSchedule,
    optimizer: keras.optimizers.Optimizer,
    run_dir: str | os.PathLike,
    *,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    resume: bool = False,
    loss: str = "sparse_categorical_crossentropy",
    metrics: Sequence[str] = ("accuracy",),
    callbacks: Sequence[keras.callbacks.Callback] = (),
    tensorboard: bool = False,
    save_every_epoch: bool = False,
    verbose: int | str = "auto",
    **fit_options: Any,
) -> tuple[keras.callbacks.History, dict[str, Any]]:
    """Train ``model`` on ``dataset`` with ``schedule`` into the run folder ``run_dir``.

    The test set is the validation data (``val_*`` columns of ``log.csv``).

    Args:
        model: an uncompiled (or to-be-recompiled) model.
        dataset: the data (`bsi_keras.data.load_dataset`).
        schedule: a schedule (`bsi_keras.schedules`).
        optimizer: the optimizer.
        run_dir: the run folder; a new run refuses an existing non-empty folder.
        seed: seed of the data order (and recorded in the config).
        config: extra settings to record in ``config.json`` (e.g. the command line).
        resume: continue the run in ``run_dir`` from its checkpoint.
        loss, metrics: passed to ``model.compile``.
        callbacks: more Keras callbacks.
        tensorboard: also write TensorBoard logs (batch size and LR appear as scalars).
        save_every_epoch: keep a `.keras` snapshot of every epoch (``weights/epoch_NNN.keras``,
            epoch 0 being the initial model) for landscape and interpolation analysis.
        verbose: as in `bsi_keras.driver.fit`.
        **fit_options: passed to `bsi_keras.driver.fit`.

    Returns:
        The run's `History` and its summary (also in ``summary.json``).

    Raises:
        bsi_keras.locks.FolderLocked: another process trains into ``run_dir``.
        RunFolderError: the folder cannot be created, resumed or written (a full disk: the
            summary says ``failed`` where it can still be written).

    Example:

    >>> import tempfile
    >>> from bsi_keras import data, models, optimizers, schedules
    >>> ds = data.synthetic(200, (28, 28, 1))
    >>> s = schedules.constant(1, 50, 0.01)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _, summary = train(models.get_model("mnist_cnn"), ds, s,
    ...                        optimizers.get_optimizer("sgd", 0.01), Path(d) / "r", verbose=0)
    >>> summary["status"], summary["total_updates"]
    ('finished', 4)
    """
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    # Of several processes training together, process 0 alone writes run_dir.
    with process_folder(run_dir, resume) as run_dir:
        try:
            lock = FolderLock(run_dir).acquire()
        except OSError as error:
            raise RunFolderError(f"cannot use {run_dir} as a run folder: {error}") from error
        with lock:
            folder = _open_folder(run_dir, resume, model, dataset, schedule, seed, config)
            return _train_locked(
                model,
                dataset,
                schedule,
                folder,
                seed,
                callbacks,
                tensorboard,
                save_every_epoch,
                verbose,
                resume,
                fit_options,
            )


def _train_locked(
    model: keras.Model,
    dataset: Dataset,
    schedule: BaseSchedule,
    folder: RunFolder,
    seed: int,
    callbacks: Sequence[keras.callbacks.Callback],
    tensorboard: bool,
    save_every_epoch: bool,
    verbose: int | str,
    resume: bool,
    fit_options: Mapping[str, Any],
) -> tuple[keras.callbacks.History, dict[str, Any]]:
    run_callbacks = [folder.log_callback(), *callbacks]
    if tensorboard:
        run_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(folder.path / "tensorboard")))
    if save_every_epoch:
        if not resume:
            folder.save_snapshot(model, 0)
        run_callbacks.append(folder.snapshot_callback())
    try:
        history = fit(
            model,
            dataset.x_train,
            dataset.y_train,
            schedule=schedule,
            validation_data=(dataset.x_test, dataset.y_test),
            callbacks=run_callbacks,
            verbose=verbose,
            seed=seed,
            checkpoint_dir=folder.path,
            augmentation=dataset.train_augmentation,
            **fit_options,
        )
    except TrainingInterrupted as interrupted:
        interrupted.run_dir = folder.path
        if interrupted.history is not None:
            folder.write_summary(interrupted.history, signal=interrupted.signum)
        raise
    except OSError as error:  # a full disk or a vanished folder, mid-run
        _write_failure(folder, error)
        raise RunFolderError(
            f"writing {folder.path} failed: {error}. Finished epochs are kept; free space "
            f"and continue with --resume {folder.path}"
        ) from error
    return history, folder.write_summary(history)


def _write_failure(folder: RunFolder, error: OSError) -> None:
    """A summary saying the run failed, where the disk still takes it."""
    history = keras.callbacks.History()
    history.on_train_begin()  # no epochs: the log and checkpoint keep the finished ones
    with contextlib.suppress(OSError):
        folder.write_summary(history, status="failed", error=str(error))


def _open_folder(
    run_dir: str | os.PathLike,
    resume: bool,
    model: keras.Model,
    dataset: Dataset,
    schedule: BaseSchedule,
    seed: int,
    config: Mapping[str, Any] | None,
) -> RunFolder:
    if resume:
        folder = RunFolder.open_existing(run_dir)
        state = checkpoint.read_state(folder.path)
        folder.record_resumption(from_epoch=(state.next_epoch if state else 0) + 1)
        return folder
    record = {
        **(config or {}),
        "seed": seed,
        "schedule": schedule.to_config(),
        "dataset": dataset.info(),
        "model": {"name": model.name, "parameters": model.count_params()},
        "optimizer": keras.optimizers.serialize(model.optimizer),
    }
    checkpoint_bytes = 4 * 4 * model.count_params()  # weights + optimizer slots, float32
    return RunFolder.create(Path(run_dir), record, min_free_bytes=2 * checkpoint_bytes + 2**20)
