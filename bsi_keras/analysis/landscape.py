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

Command line (a run folder trained with ``--saveState``)::

    python -m bsi_keras.analysis RUN --epoch 20 --x=-1:1:51 --y=-1:1:51 \\
        --num_train 2000 --out RUN/landscape_2d.npz --plot RUN/landscape_2d.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from bsi_keras.analysis.solution import evaluate, load_solution, weight_values

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
) -> list[np.ndarray]:
    """Scale a direction to the weights, tensor by tensor, as Li et al.

    With ``"filter"``, each filter of a kernel (a slice along the last axis: one output
    channel of a Keras ``Conv`` kernel ``(h, w, in, out)``, one output unit of a ``Dense``
    kernel ``(in, out)``) is scaled to the norm of the weights' same filter:
    ``d[..., i] * |w[..., i]| / (|d[..., i]| + 1e-10)``. With ``"layer"``, each tensor as a
    whole. 1-D tensors (biases, batch-norm scales and offsets) are zeroed
    (``ignore_biasbn``, the reference's ``--xignore biasbn``), or else set to the weights
    themselves, as the reference does.

    Args:
        direction: one array per weight tensor.
        weights: the solution's trainable weights.
        norm: ``"filter"`` or ``"layer"``.
        ignore_biasbn: zero the direction on 1-D tensors.

    Returns:
        The normalized direction (new arrays).

    Example:

    >>> w = [np.array([[3.0, 0.0], [4.0, 1.0]]), np.array([5.0, 5.0])]
    >>> d = [np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([1.0, 1.0])]
    >>> [np.round(t, 3).tolist() for t in normalize_direction(d, w)]
    [[[5.0, 1.0], [0.0, 0.0]], [0.0, 0.0]]
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    normalized = []
    for d, w in zip(direction, weights):
        if d.ndim <= 1:
            normalized.append(np.zeros_like(d) if ignore_biasbn else np.array(w, dtype=d.dtype))
            continue
        axes = tuple(range(d.ndim - 1)) if norm == "filter" else None
        scale = _norm(w, axes) / (_norm(d, axes) + 1e-10)
        normalized.append((d * scale).astype(d.dtype))
    return normalized


def _norm(t: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    """Euclidean norm over ``axes`` (all: None); per filter with the last axis left out."""
    return np.sqrt(np.sum(np.square(t, dtype=np.float64), axis=axes))


def random_direction(
    model: keras.Model, seed: int | None = None, norm: str = "filter", ignore_biasbn: bool = True
) -> list[np.ndarray]:
    """A Gaussian direction in the model's trainable weights, normalized to them.

    Args:
        model: the solution.
        seed: seed of the Gaussian draw (numpy's default generator).
        norm, ignore_biasbn: see `normalize_direction`.

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
    return normalize_direction(direction, weights, norm, ignore_biasbn)


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


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    p = argparse.ArgumentParser(
        prog="python -m bsi_keras.analysis",
        description="Loss landscape around a saved solution (a run folder and an epoch).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="run folder trained with --saveState")
    p.add_argument("--epoch", type=int, required=True, help="epoch of the solution")
    p.add_argument(
        "--target",
        default=None,
        help="run folder of a second solution: the x "
        "direction becomes target - solution, un-normalized",
    )
    p.add_argument("--target_epoch", type=int, default=None, help="its epoch (default --epoch)")
    p.add_argument("--x", default="-1:1:51", help="x grid MIN:MAX:NUM")
    p.add_argument("--y", default=None, help="y grid MIN:MAX:NUM (a 2-D landscape)")
    p.add_argument("--norm", default="filter", choices=NORMS, help="direction normalization")
    p.add_argument("--num_train", type=int, default=None, help="first N training examples")
    p.add_argument("--batch_size", type=int, default=5000, help="evaluation batch size")
    p.add_argument("--seed", type=int, default=123, help="seed of the random directions")
    p.add_argument(
        "--batch_stats_in_inference",
        action="store_true",
        help="rebuild the model with the reference's BN mode=2",
    )
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--plot", default=None, help="also draw the landscape into this PNG")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    from bsi_keras.analysis import figures
    from bsi_keras.data import load_dataset
    from bsi_keras.run_folder import RunFolder

    args = build_parser().parse_args(argv)
    options = {"batch_stats_in_inference": True} if args.batch_stats_in_inference else {}
    model = load_solution(args.run, args.epoch, **options)
    if args.target:
        target = load_solution(args.target, args.target_epoch or args.epoch, **options)
        x_direction = target_direction(model, target)
    else:
        x_direction = random_direction(model, args.seed, args.norm)
    y_direction = random_direction(model, args.seed + 1, args.norm) if args.y else None
    config = RunFolder(args.run).read_config()
    model_settings = config["spec"]["model"] if "spec" in config else config.get("args", {})
    dataset = load_dataset(
        config["dataset"]["name"], model_settings.get("data_dir"), num_train=args.num_train
    )
    result = loss_landscape(
        model,
        dataset.x_train,
        dataset.y_train,
        x_direction,
        y_direction,
        parse_range(args.x),
        parse_range(args.y) if args.y else None,
        batch_size=args.batch_size,
    )
    print(f"{result.loss.size} points in {result.seconds:.1f} s -> {result.save(args.out)}")
    if args.plot:
        draw = figures.plot_contour if args.y else figures.plot_landscape_1d
        print(f"figure: {draw({Path(args.run).name: result}, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
