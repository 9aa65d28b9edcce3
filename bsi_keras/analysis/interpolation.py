"""Linear interpolation between two solutions: Keskar et al.'s parametric plot.

Along ``theta(alpha) = alpha * theta_large + (1 - alpha) * theta_small`` (alpha in [-1, 2],
25 points, as keskarnitish/large-batch-training's ``plot_parametric_plot.py``), measure loss
and accuracy on the training and the test set. A sharp large-batch minimum shows as a
narrow valley around ``alpha = 1`` next to a wide one around ``alpha = 0``.

Only the trainable weights lie on the line. The batch-norm moving statistics are not
weights, and the line does not say what they should be; ``bn_stats`` decides:

- ``"recompute"`` (default): at every point, the statistics that the network at that point
  has on the training data (`recompute_batch_norm_statistics`). The loss plotted is then
  the loss of a network that is consistent with its own normalization, and the
  extrapolated ends (alpha -1 and 2) stay meaningful. It costs one more forward pass over
  the training data per point.
- ``"interpolate"``: the statistics go along the line with the weights (every floating
  non-trainable variable), as the PyTorch port interpolates the whole ``state_dict`` and
  Li et al.'s ``--dir_type states``. Cheap, exact at alpha 0 and 1, but the mix of two
  networks' statistics is no network's statistics, and extrapolated variances can turn
  negative (NaN losses).
- ``"small"`` / ``"large"``: keep one solution's statistics all along the line.

Layers that normalize with batch statistics at inference (``batch_stats_in_inference=True``,
the reference's ``mode=2``) have no statistics to choose: all four options agree there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bsi_keras.analysis.solution import batch_slices, evaluate, weight_values

BN_STATS = ("recompute", "interpolate", "small", "large")


@dataclass(frozen=True)
class Interpolation:
    """Loss and accuracy along the line from the small-batch to the large-batch solution.

    Attributes:
        alphas: the points (0: the small-batch solution, 1: the large-batch one).
        train_loss, train_accuracy, test_loss, test_accuracy: one value per alpha.
        bn_stats: how the batch-norm statistics were set along the line.
    """

    alphas: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    bn_stats: str

    def save(self, path: str | os.PathLike) -> Path:
        """Write the arrays to an ``.npz`` file; return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **asdict(self))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Interpolation:
        """Read an ``.npz`` file written by `save`."""
        with np.load(path) as f:
            return cls(**{k: f[k] for k in f.files if k != "bn_stats"}, bn_stats=str(f["bn_stats"]))


def interpolate(
    small: keras.Model,
    large: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    alphas: int | Sequence[float] = 25,
    bn_stats: str = "recompute",
    batch_size: int = 5000,
    verbose: int = 1,
) -> Interpolation:
    """Loss and accuracy on train and test along ``alpha * large + (1 - alpha) * small``.

    Args:
        small: the small-batch solution (a compiled model).
        large: the large-batch solution, same architecture.
        train: ``(x, y)`` of the training set (also where ``"recompute"`` measures the
            batch-norm statistics).
        test: ``(x, y)`` of the test set.
        alphas: the points, or their number in [-1, 2] (25 as the reference).
        bn_stats: the batch-norm moving statistics along the line: ``"recompute"``,
            ``"interpolate"``, ``"small"`` or ``"large"`` (see the module docstring).
        batch_size: examples per forward pass (the reference evaluates with 5000).
        verbose: 1 shows a progress bar.

    Returns:
        The `Interpolation`.

    Example:

    >>> from bsi_keras import data, models
    >>> ds = data.synthetic(64, (28, 28, 1))
    >>> a, b = models.get_model("mnist_cnn"), models.get_model("mnist_cnn")
    >>> for m in (a, b):
    ...     m.compile(loss="sparse_categorical_crossentropy")
    >>> line = interpolate(a, b, (ds.x_train, ds.y_train), (ds.x_test, ds.y_test),
    ...                    alphas=3, verbose=0)
    >>> line.alphas.tolist()
    [-1.0, 0.5, 2.0]
    """
    if bn_stats not in BN_STATS:
        raise ValueError(f"bn_stats must be one of {', '.join(BN_STATS)}, got {bn_stats!r}")
    alphas = np.linspace(-1.0, 2.0, alphas) if isinstance(alphas, int) else np.asarray(alphas)
    small_trainable, _ = weight_values(small)
    large_trainable, _ = weight_values(large)
    progress = keras.utils.Progbar(
        len(alphas),
        verbose=verbose,
        unit_name="point",
        stateful_metrics=["train_loss", "test_loss"],
    )
    rows = []
    for alpha in alphas:
        trainable = _mix(alpha, large_trainable, small_trainable)
        stats = _statistics_at(alpha, trainable, bn_stats, small, large, train[0], batch_size)
        row = [
            *evaluate(small, *train, trainable, stats, batch_size),
            *evaluate(small, *test, trainable, stats, batch_size),
        ]
        rows.append(row)
        progress.add(1, [("train_loss", row[0]), ("test_loss", row[2])])
    columns = np.array(rows).T
    return Interpolation(alphas, *columns, bn_stats=bn_stats)


def recompute_batch_norm_statistics(
    model: keras.Model,
    x: np.ndarray,
    trainable: Sequence[Any] | None = None,
    non_trainable: Sequence[Any] | None = None,
    batch_size: int = 5000,
) -> list[np.ndarray]:
    """The model's non-trainable values with the moving statistics measured on ``x``.

    Every batch-norm layer (Keras's or ours) that normalizes with moving statistics at
    inference gets, as moving mean and variance, the average over the batches of ``x``
    of the (virtual) batch statistics it computes in training mode, as PyTorch's
    ``torch.optim.swa_utils.update_bn`` does. The batch statistics are read through the
    layer's own update ``new = momentum * old + (1 - momentum) * batch``, started from
    zero. Other non-trainable values are returned unchanged.

    Args:
        model: the model.
        x: inputs (the training set).
        trainable: trainable values (default: the model's own).
        non_trainable: non-trainable values to start from (default: the model's own).
        batch_size: examples per forward pass (the statistics of each are averaged).

    Returns:
        One value per ``model.non_trainable_variables``.

    Example:

    >>> from bsi_keras import models
    >>> model = models.get_model("mnist_cnn")
    >>> x = 3.0 + np.random.default_rng(0).normal(size=(50, 28, 28, 1)).astype("float32")
    >>> stats = recompute_batch_norm_statistics(model, x)
    >>> round(float(stats[0][0]), 1)  # the moving mean of the input's only channel
    3.0
    """
    own_trainable, own_stats = weight_values(model)
    trainable = own_trainable if trainable is None else list(trainable)
    start = list(own_stats if non_trainable is None else non_trainable)
    position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    slots = [
        (position[id(variable)], layer.momentum)
        for layer in _moving_statistics_layers(model)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]
    result = list(start)
    if not slots:
        return result
    for index, _ in slots:
        start[index] = np.zeros_like(start[index])
        result[index] = 0.0
    for part in batch_slices(len(x), batch_size):
        _, updated = model.stateless_call(trainable, start, x[part], training=True)
        weight = (part.stop - part.start) / len(x)
        for index, momentum in slots:
            batch_statistic = keras.ops.convert_to_numpy(updated[index]) / (1.0 - momentum)
            result[index] = result[index] + weight * batch_statistic
    return result


def _statistics_at(
    alpha: float,
    trainable: list[np.ndarray],
    bn_stats: str,
    small: keras.Model,
    large: keras.Model,
    x_train: np.ndarray,
    batch_size: int,
) -> list[np.ndarray]:
    """The non-trainable values at ``alpha`` under the ``bn_stats`` policy."""
    _, small_stats = weight_values(small)
    _, large_stats = weight_values(large)
    if bn_stats == "recompute":
        return recompute_batch_norm_statistics(small, x_train, trainable, small_stats, batch_size)
    if bn_stats == "interpolate":
        return _mix(alpha, large_stats, small_stats)
    return small_stats if bn_stats == "small" else large_stats


def _moving_statistics_layers(layer: Any) -> Iterator[keras.layers.Layer]:
    """Batch-norm layers inside ``layer`` that use their moving statistics at inference."""
    for sub in getattr(layer, "layers", []):
        if hasattr(sub, "moving_mean") and hasattr(sub, "moving_variance"):
            if not getattr(sub, "batch_stats_in_inference", False):
                yield sub
        else:
            yield from _moving_statistics_layers(sub)


def _mix(alpha: float, large: Sequence[np.ndarray], small: Sequence[np.ndarray]) -> list:
    """``alpha * large + (1 - alpha) * small`` for floating arrays; others from ``small``."""
    return [
        (alpha * b + (1.0 - alpha) * a).astype(a.dtype)
        if np.issubdtype(a.dtype, np.floating)
        else a
        for a, b in zip(small, large)
    ]
