"""A trained solution read back: its model rebuilt from a run folder, its loss at any weights.

The analysis tools (sharpness, interpolation, landscapes) all ask one question: what are a
model's loss and accuracy on a dataset when its weights are set to some values? `evaluate`
answers it without touching the model's variables (through
`bsi_keras.train_step.autodiff.stateless_loss`), in big batches, on any backend.
`load_solution` reads back the `.keras` snapshot of one epoch of a run folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np

from bsi_keras.models import get_model
from bsi_keras.run_folder import RunFolder, RunFolderError
from bsi_keras.train_step.autodiff import stateless_loss

LOSS = "sparse_categorical_crossentropy"


class Evaluation(NamedTuple):
    """Mean loss (the compiled loss plus regularization) and accuracy over a dataset."""

    loss: float
    accuracy: float


def model_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The model part of a run's ``config.json``: its run spec's (``config["spec"]["model"]``,
    see `bsi_keras.cli.RunSpec`), or an older folder's ``args``, under the spec's names
    (``name``, ``mini_batch_size``, ``weight_decay``, ``data_dir``, ...).

    Example:

    >>> model_settings({"args": {"model": "mnist_cnn", "weight_decay": 0.0}})["name"]
    'mnist_cnn'
    """
    if "spec" in config:
        return dict(config["spec"]["model"])
    settings = dict(config.get("args", {}))
    settings["name"] = settings.pop("model", config.get("model", {}).get("name"))
    return settings


def load_solution(run_folder: str | os.PathLike, epoch: int, **model_options: Any) -> keras.Model:
    """The model of a run folder as it was after ``epoch``, compiled for evaluation.

    The run must have kept per-epoch snapshots (``train(..., save_every_epoch=True)``, CLI
    ``--saveState``): the snapshot ``weights/epoch_NNN.keras`` is read with
    `keras.saving.load_model`, so the model has its weight decay and the loss is the
    training loss. With ``model_options``, the model is instead rebuilt from ``config.json``
    with those options and the snapshot's weights: the model `model_settings` names, with
    its ``mini_batch_size`` as virtual batch size (0: the whole batch) and its
    ``weight_decay``. A run folder
    written before snapshots existed (``weights/epoch_NNN.weights.h5``) is always rebuilt
    that way. The model is compiled with the sparse categorical cross-entropy and accuracy,
    as `bsi_keras.experiment.train` does.

    Args:
        run_folder: the run folder.
        epoch: 1-based epoch whose weights to load (0: the initial weights).
        **model_options: builder options that override the recorded ones (e.g.
            ``batch_stats_in_inference=True``, which a run folder does not record).

    Returns:
        The compiled model with the epoch's weights.

    Raises:
        RunFolderError: not a run folder, or no weights were kept for ``epoch``.

    Example:

    >>> model = load_solution("runs/fashion_f1_sb", 20)  # doctest: +SKIP
    """
    folder = RunFolder(run_folder)
    config = folder.read_config()
    snapshot, legacy = folder.snapshot_path(epoch), folder.weights_path(epoch)
    if snapshot.is_file() and not model_options:
        model = keras.saving.load_model(snapshot, compile=False)
    else:
        path = snapshot if snapshot.is_file() else legacy
        if not path.is_file():
            kept = sorted(p.name for p in snapshot.parent.glob("epoch_*"))
            raise RunFolderError(
                f"{snapshot} does not exist (kept: {', '.join(kept) or 'none'}); train with "
                "--saveState / save_every_epoch=True to keep the model of every epoch"
            )
        model = _rebuild(config, model_options)
        # Loaded before compiling: the file's optimizer variables then have no optimizer to
        # fill and are skipped silently.
        model.load_weights(str(path))
    model.compile(loss=LOSS, metrics=["accuracy"])
    return model


def _rebuild(config: dict[str, Any], model_options: dict[str, Any]) -> keras.Model:
    """A new model as the run's ``config.json`` describes it, ``model_options`` overriding."""
    settings = model_settings(config)
    dataset = config.get("dataset", {})
    options = {
        "input_shape": tuple(dataset["input_shape"]),
        "num_classes": dataset["num_classes"],
        "virtual_batch_size": settings.get("mini_batch_size") or None,
        "weight_decay": settings.get("weight_decay", 0.0),
        **model_options,
    }
    return get_model(settings["name"], **options)


def weight_values(model: keras.Model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The model's trainable and non-trainable variable values, as numpy arrays.

    Example:

    >>> from bsi_keras.models import get_model
    >>> trainable, non_trainable = weight_values(get_model("mnist_cnn"))
    >>> [w.shape for w in trainable]
    [(1,), (1,), (3, 3, 1, 8), (8,), (1352, 10), (10,)]
    """

    def values(variables: Sequence[Any]) -> list[np.ndarray]:
        return [keras.ops.convert_to_numpy(v) for v in variables]

    return values(model.trainable_variables), values(model.non_trainable_variables)


def batch_slices(num_examples: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` examples covering ``num_examples``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    for start in range(0, num_examples, batch_size):
        yield slice(start, min(start + batch_size, num_examples))


def evaluate(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    trainable: Sequence[Any] | None = None,
    non_trainable: Sequence[Any] | None = None,
    batch_size: int = 5000,
    training: bool = False,
) -> Evaluation:
    """Loss and accuracy of ``model`` at the given weight values, its variables untouched.

    The loss is the compiled loss (with the model's regularization, as in training),
    averaged over the examples; batches are consecutive slices of ``x``, so that a model
    that normalizes with batch statistics at inference sees the same batches every call.

    Args:
        model: a compiled classification model (integer labels).
        x, y: the dataset.
        trainable: one value per ``model.trainable_variables`` (default: the model's own).
        non_trainable: one value per ``model.non_trainable_variables`` (default: own).
        batch_size: examples per forward pass (big is fast; it matters only for models
            that use batch statistics at inference).
        training: run the layers in training mode (batch statistics, dropout).

    Returns:
        The `Evaluation` (loss, accuracy).

    Example:

    >>> from bsi_keras import data, models
    >>> ds = data.synthetic(100, (28, 28, 1))
    >>> model = models.get_model("mnist_cnn")
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> result = evaluate(model, ds.x_train, ds.y_train, batch_size=64)
    >>> 0.0 <= result.accuracy <= 1.0
    True
    """
    own_trainable, own_non_trainable = weight_values(model)
    trainable = own_trainable if trainable is None else trainable
    non_trainable = own_non_trainable if non_trainable is None else non_trainable
    total_loss = total_correct = 0.0
    for part in batch_slices(len(x), batch_size):
        loss, (y_pred, _) = stateless_loss(
            model, trainable, non_trainable, x[part], y[part], training=training
        )
        correct = keras.metrics.sparse_categorical_accuracy(y[part], y_pred)
        total_loss += float(loss) * (part.stop - part.start)
        total_correct += float(keras.ops.sum(correct))
    return Evaluation(total_loss / len(x), total_correct / len(x))
