"""Filter-normalized loss landscapes (Li, Xu, Taylor, Studer and Goldstein, NeurIPS 2018).

The loss around a solution ``theta`` along one or two directions: ``f(theta + a d1)`` on a
1-D grid, ``f(theta + a d1 + b d2)`` on a 2-D grid (``-1:1:51`` in tomgoldstein/
loss-landscape's notation). A random Gaussian direction is *filter-normalized*: each filter
of each weight tensor is rescaled to the norm of the matching filter of the solution, so
that the plot does not depend on the scale of the weights (which batch normalization makes
arbitrary). As the reference's ``--xignore biasbn``, 1-D tensors (biases, batch-norm scales
and offsets) get no direction. A direction can also be the difference between two solutions
(the reference's ``--model_file2``), un-normalized: the 1-D plot is then the linear
interpolation between them.

Only trainable weights move; the non-trainable variables (batch-norm moving statistics)
keep the solution's values, as the reference's ``--dir_type weights`` evaluates with the
solution's running statistics.

The command line is `bsi_keras.analysis.__main__` (``python -m bsi_keras.analysis``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from bsi_keras.analysis.solution import evaluate, weight_values

NORMS = ("filter", "layer")


@dataclass(frozen=True)
class Landscape:
    """Loss and accuracy on a 1-D or 2-D grid of directions around a solution.

    Attributes:
        x_coordinates: steps along the first direction.
        y_coordinates: steps along the second direction (None for a 1-D landscape).
        loss, accuracy: shape ``(len(x),)``, or ``(len(x), len(y))`` with
            ``loss[i, j]`` at ``(x_coordinates[i], y_coordinates[j])``.
        seconds: the wall time of the evaluation.
    """

    x_coordinates: np.ndarray
    y_coordinates: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray
    seconds: float = float("nan")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the arrays to an ``.npz`` file; return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        y = np.array([]) if self.y_coordinates is None else self.y_coordinates
        np.savez(
            path,
            x_coordinates=self.x_coordinates,
            y_coordinates=y,
            loss=self.loss,
            accuracy=self.accuracy,
            seconds=self.seconds,
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Landscape:
        """Read an ``.npz`` file written by `save`."""
        with np.load(path) as f:
            y = f["y_coordinates"]
            return cls(
                f["x_coordinates"],
                y if y.size else None,
                f["loss"],
                f["accuracy"],
                float(f["seconds"]),
            )


def parse_range(text: str) -> np.ndarray:
    """Grid coordinates from the reference's ``MIN:MAX:NUM`` notation.

    Example:

    >>> parse_range("-1:1:5").tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    try:
        low, high, num = text.split(":")
        return np.linspace(float(low), float(high), int(num))
    except ValueError:
        raise ValueError(f"a grid is MIN:MAX:NUM, e.g. -1:1:51; got {text!r}") from None


def normalize_direction(
    direction: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    norm: str = "filter",
    ignore_biasbn: bool = True,
    filter_axes: Sequence[tuple[int, ...]] | None = None,
) -> list[np.ndarray]:
    """Scale a direction to the weights, tensor by tensor, as Li et al.

    With ``"filter"``, each filter of a kernel is scaled to the norm of the weights' same
    filter: ``d_f * |w_f| / (|d_f| + 1e-10)``. A filter is the reference's slice along
    PyTorch's output dimension: by default a slice along the last axis (one output channel
    of a Keras ``Conv`` kernel ``(h, w, in, out)``, one output unit of a ``Dense`` kernel
    ``(in, out)``); ``filter_axes`` names, per tensor, the axes one filter spans instead
    (`filter_axes` of a model gives ``(0, 1)`` for a ``DepthwiseConv2D`` kernel
    ``(h, w, in, multiplier)``, where each ``(in, multiplier)`` pair is one filter of
    PyTorch's grouped convolution). With ``"layer"``, each tensor as a whole. 1-D tensors
    (biases, batch-norm scales and offsets) are zeroed (``ignore_biasbn``, the reference's
    ``--xignore biasbn``), or else set to the weights themselves, as the reference does.

    Args:
        direction: one array per weight tensor.
        weights: the solution's trainable weights.
        norm: ``"filter"`` or ``"layer"``.
        ignore_biasbn: zero the direction on 1-D tensors.
        filter_axes: per tensor, the axes one filter spans (None: all but the last).

    Returns:
        The normalized direction (new arrays).

    Example:

    >>> w = [np.array([[3.0, 0.0], [4.0, 1.0]]), np.array([5.0, 5.0])]
    >>> d = [np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([1.0, 1.0])]
    >>> [np.round(t, 3).tolist() for t in normalize_direction(d, w)]
    [[[5.0, 1.0], [0.0, 0.0]], [0.0, 0.0]]
    >>> # Each entry of the first tensor a filter of its own: every direction entry gets |w|.
    >>> np.round(normalize_direction(d, w, filter_axes=[(), ()])[0], 3).tolist()
    [[3.0, 0.0], [0.0, 0.0]]
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if filter_axes is None:
        filter_axes = [tuple(range(np.ndim(d) - 1)) for d in direction]
    elif len(filter_axes) != len(direction):
        raise ValueError(
            f"filter_axes needs one entry per tensor: {len(filter_axes)} for {len(direction)}"
        )
    normalized = []
    for d, w, spanned in zip(direction, weights, filter_axes):
        if d.ndim <= 1:
            normalized.append(np.zeros_like(d) if ignore_biasbn else np.array(w, dtype=d.dtype))
            continue
        axes = tuple(spanned) if norm == "filter" else None
        scale = _norm(w, axes) / (_norm(d, axes) + 1e-10)
        normalized.append((d * scale).astype(d.dtype))
    return normalized


def _norm(t: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    """Euclidean norm over ``axes`` (all: None), kept broadcastable to ``t``."""
    return np.sqrt(np.sum(np.square(t, dtype=np.float64), axis=axes, keepdims=True))


# Kernels whose filters are per input channel: PyTorch's grouped convolution of
# ``groups = in_channels`` has weight ``(in * multiplier, 1, h, w)``, one filter per
# ``(in, multiplier)``, which a Keras kernel ``(h, w, in, multiplier)`` holds in its last two axes.
_DEPTHWISE_KERNELS = (
    (keras.layers.DepthwiseConv1D, "kernel"),
    (keras.layers.DepthwiseConv2D, "kernel"),
    (keras.layers.SeparableConv1D, "depthwise_kernel"),
    (keras.layers.SeparableConv2D, "depthwise_kernel"),
)


def filter_axes(model: keras.Model) -> list[tuple[int, ...]]:
    """Per trainable variable of ``model``, the axes one filter spans (`normalize_direction`).

    All axes but the last, except depthwise kernels (of ``DepthwiseConv1D/2D`` and the
    depthwise half of ``SeparableConv1D/2D``), whose filters are per input channel and
    multiplier: all axes but the last two. Layers are found through ``.layers``, nested
    models included.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((8, 8, 3)),
    ...     keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
    ...     keras.layers.Conv2D(4, 1),
    ... ])
    >>> filter_axes(model)
    [(0, 1), (), (0, 1, 2), ()]
    """
    depthwise = {
        id(getattr(layer, name))
        for layer in _all_layers(model)
        for kind, name in _DEPTHWISE_KERNELS
        if isinstance(layer, kind) and getattr(layer, name, None) is not None
    }
    return [
        tuple(range(len(v.shape) - (2 if id(v) in depthwise else 1)))
        for v in model.trainable_variables
    ]


def _all_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    found = []
    for child in getattr(layer, "layers", ()):
        found += [child, *_all_layers(child)]
    return found


def random_direction(
    model: keras.Model, seed: int | None = None, norm: str = "filter", ignore_biasbn: bool = True
) -> list[np.ndarray]:
    """A Gaussian direction in the model's trainable weights, normalized to them.

    Args:
        model: the solution.
        seed: seed of the Gaussian draw (numpy's default generator).
        norm, ignore_biasbn: see `normalize_direction` (filters as `filter_axes` finds
            them, depthwise kernels per channel).

    Returns:
        One float32 array per trainable variable.

    Example:

    >>> from bsi_keras.models import get_model
    >>> [d.shape for d in random_direction(get_model("mnist_cnn"), seed=0)][2:4]
    [(3, 3, 1, 8), (8,)]
    """
    weights, _ = weight_values(model)
    rng = np.random.default_rng(seed)
    direction = [rng.standard_normal(w.shape, dtype=np.float32) for w in weights]
    return normalize_direction(direction, weights, norm, ignore_biasbn, filter_axes(model))


def target_direction(model: keras.Model, target: keras.Model) -> list[np.ndarray]:
    """The difference ``target - model`` of two solutions' trainable weights (all tensors).

    Example:

    >>> from bsi_keras.models import get_model
    >>> m = get_model("mnist_cnn")
    >>> all(not d.any() for d in target_direction(m, m))
    True
    """
    weights, _ = weight_values(model)
    target_weights, _ = weight_values(target)
    return [t - w for w, t in zip(weights, target_weights)]


def loss_landscape(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    x_direction: Sequence[np.ndarray],
    y_direction: Sequence[np.ndarray] | None = None,
    x_coordinates: Sequence[float] | None = None,
    y_coordinates: Sequence[float] | None = None,
    batch_size: int = 5000,
    verbose: int = 1,
) -> Landscape:
    """Loss and accuracy of ``model`` at ``theta + a d1 (+ b d2)`` on a grid.

    Args:
        model: the solution (a compiled model).
        x, y: the data (Li et al.: the training set; a subset is much faster).
        x_direction: ``d1`` (`random_direction` or `target_direction`).
        y_direction: ``d2`` for a 2-D landscape, or None.
        x_coordinates: the steps ``a`` (None: ``-1:1:51``).
        y_coordinates: the steps ``b`` (default: the same as ``x_coordinates``).
        batch_size: examples per forward pass (big is fast).
        verbose: 1 shows a progress bar over the grid points.

    Returns:
        The `Landscape`.

    Example:

    >>> from bsi_keras import data, models
    >>> ds = data.synthetic(64, (28, 28, 1))
    >>> model = models.get_model("mnist_cnn")
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> d1, d2 = random_direction(model, seed=1), random_direction(model, seed=2)
    >>> grid = loss_landscape(model, ds.x_train, ds.y_train, d1, d2, [-1, 0, 1], verbose=0)
    >>> grid.loss.shape
    (3, 3)
    """
    weights, stats = weight_values(model)
    xs = np.asarray(
        parse_range("-1:1:51") if x_coordinates is None else x_coordinates, dtype=np.float64
    )
    ys = (
        None
        if y_direction is None
        else np.asarray(xs if y_coordinates is None else y_coordinates, dtype=np.float64)
    )
    grid = [(a, 0.0) for a in xs] if ys is None else [(a, b) for a in xs for b in ys]
    zero = [np.zeros_like(w) for w in weights]
    progress = keras.utils.Progbar(
        len(grid), verbose=verbose, unit_name="point", stateful_metrics=["loss"]
    )
    started = time.perf_counter()
    values = []
    for a, b in grid:
        point = [
            (w + a * dx + b * dy).astype(w.dtype)
            for w, dx, dy in zip(weights, x_direction, y_direction or zero)
        ]
        values.append(evaluate(model, x, y, point, stats, batch_size))
        progress.add(1, [("loss", values[-1].loss)])
    shape = (len(xs),) if ys is None else (len(xs), len(ys))
    loss, accuracy = (np.reshape(column, shape) for column in zip(*values))
    return Landscape(xs, ys, loss, accuracy, time.perf_counter() - started)
