"""Keskar et al.'s sharpness of a solution (their Metric 2.1), on any Keras backend.

Keskar, Mudigere, Nocedal, Smelyanskiy and Tang (ICLR 2017) define the sharpness of a
solution ``x`` (the weights) of a loss ``f`` as the largest relative rise of the loss in a
small box around ``x``::

    C_eps = { z in R^p : -eps (|(A^+ x)_i| + 1) <= z_i <= eps (|(A^+ x)_i| + 1) }

    phi_{x,f}(eps, A) = 100 * (max_{z in C_eps} f(x + A z) - f(x)) / (1 + f(x))

with ``A = I_n`` (the full space) or a random ``n x p`` matrix (a random subspace,
``p = 100`` in the paper), ``A^+`` the pseudo-inverse of ``A``, ``eps`` 1e-3 or 5e-4, and the
maximum found approximately by 10 iterations of L-BFGS-B. The authors never released their
code (their README promises it; issues #3 and #7 of keskarnitish/large-batch-training ask
for it, and ask how ``A`` is drawn). `sharpness` is our implementation; its docstring lists
every choice the paper leaves open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import scipy.optimize

from bsi_keras.analysis.solution import batch_slices, evaluate, weight_values
from bsi_keras.train_step.autodiff import stateless_loss, value_and_grad

SUBSPACE_DIM = 100  # p in the paper
EPSILONS = (1e-3, 5e-4)  # the paper's two box sizes


@dataclass(frozen=True)
class Sharpness:
    """One sharpness measurement.

    Attributes:
        value: Keskar's phi, in percent of ``1 + loss``: the best over the starts.
        epsilon: the box size.
        dimension: ``p``, the dimension of the searched space (the number of trainable
            weights ``n`` in the full space).
        loss: ``f(x)``, the loss at the solution.
        max_loss: the largest loss found in the box, over all starts.
        iterations: L-BFGS-B iterations run, all starts together.
        evaluations: loss-and-gradient evaluations (each one pass over the data), all
            starts together.
        start_values: phi of each start's own search, in the order of the starts.
        min_value: the smallest of ``start_values`` (the largest is ``value``).
        std_value: their standard deviation (0 for one start): how far one search lands
            from another, so how far ``value`` may still lie below the true maximum.
    """

    value: float
    epsilon: float
    dimension: int
    loss: float
    max_loss: float
    iterations: int
    evaluations: int
    start_values: tuple[float, ...]
    min_value: float
    std_value: float

    @property
    def starts(self) -> int:
        """The number of starting points searched from."""
        return len(self.start_values)


def random_subspace(num_weights: int, dim: int = SUBSPACE_DIM, seed: int = 0) -> np.ndarray:
    """The random ``n x p`` matrix ``A`` of a subspace measurement.

    Entries are i.i.d. normal with variance ``1 / n`` (float32, numpy's default generator
    seeded with ``seed``): each column has unit expected norm and, for ``n >> p``, the
    columns are nearly orthonormal, so a step ``A z`` has about the length of ``z``, as
    with ``A = I``.

    Args:
        num_weights: ``n``, the number of trainable weights.
        dim: ``p``, the subspace dimension (100 in the paper).
        seed: the generator's seed.

    Returns:
        ``A``, shape ``(num_weights, dim)``, float32.

    Example:

    >>> a = random_subspace(10_000, 5)
    >>> a.shape, bool(np.allclose(a.T @ a, np.eye(5), atol=0.1))
    ((10000, 5), True)
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_weights, dim), dtype=np.float32) / np.float32(
        np.sqrt(num_weights)
    )


def box_half_widths(
    weights: np.ndarray, epsilon: float, subspace: np.ndarray | None = None
) -> np.ndarray:
    """The half widths ``eps (|(A^+ x)_i| + 1)`` of the box ``C_eps``.

    ``A^+ x`` is computed as ``(A^T A)^{-1} A^T x``, the pseudo-inverse's product for a
    matrix of full column rank (a random ``A`` has it with probability 1), solved in
    float64; ``A = None`` is the identity.

    Args:
        weights: ``x``, the flat weight vector.
        epsilon: the box size.
        subspace: ``A``, or None for the full space.

    Returns:
        The half widths, float64, one per coordinate of ``z``.

    Example:

    >>> box_half_widths(np.array([0.0, -2.0]), 1e-3).tolist()
    [0.001, 0.003]
    """
    if subspace is None:
        coordinates = weights.astype(np.float64)
    else:
        gram = (subspace.T @ subspace).astype(np.float64)
        coordinates = np.linalg.solve(gram, (subspace.T @ weights).astype(np.float64))
    return epsilon * (np.abs(coordinates) + 1.0)


def sharpness(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epsilon: float = 1e-3,
    subspace: int | np.ndarray | None = None,
    max_iterations: int = 10,
    batch_size: int = 5000,
    training: bool = False,
    seed: int = 0,
    starts: int = 3,
    verbose: int = 0,
) -> Sharpness:
    """Keskar et al.'s sharpness (Metric 2.1) of ``model``'s weights on ``(x, y)``.

    The exact definition computed, with every choice the paper leaves open:

    - ``x`` (the solution) is the vector of the model's *trainable* weights, flattened in
      the order of ``model.trainable_variables``: kernels, biases and batch-norm scales and
      offsets, everything Keskar et al.'s Keras model trained. Non-trainable variables
      (batch-norm moving statistics, random-generator states) are held at their values.
    - ``f`` is the mean training loss over ``(x, y)``: the compiled loss plus the model's
      regularization (weight decay), as in training, evaluated in consecutive batches of
      ``batch_size`` examples. By default in inference mode: dropout off, and a
      batch-norm layer normalizes with the moving statistics of the solution, held fixed
      while the weights move; a layer with ``batch_stats_in_inference=True`` (the
      reference's ``BatchNormalization(mode=2)``) normalizes each batch with its own
      statistics, recomputed at every point. With ``training=True`` layers run in
      training mode (batch statistics, dropout); the dropout masks come from the
      generator states held fixed, so they are the same at every evaluation and ``f``
      stays a deterministic function for L-BFGS-B.
    - The box is ``|z_i| <= eps (|(A^+ x)_i| + 1)`` (see `box_half_widths`), the point
      evaluated ``x + A z``. Full space: ``A = I_n`` (no matrix is formed). Random
      subspace: ``A`` from `random_subspace` (i.i.d. N(0, 1/n) entries, seeded), or a
      matrix of your own.
    - ``max f(x + A z)`` is sought by scipy's L-BFGS-B minimizing ``-f(x + A z)`` with the
      gradient ``A^T grad f(x + A z)`` from Keras's autodiff (any backend), for
      ``max_iterations`` iterations (10 in the paper), once from each of ``starts`` points
      drawn uniformly in the box (seeded; the first is the point a single start uses): at
      an exact minimizer the gradient at ``z = 0`` vanishes and L-BFGS-B would stop at
      once, and ten iterations from one point find a local maximum at best. L-BFGS-B only
      evaluates points inside the box; the maximum reported is the largest loss of any
      point evaluated by any start, and at least ``f(x)`` (``z = 0`` is in the box), so it
      is a lower bound of the true maximum and ``phi >= 0``. The per-start values and
      their spread (``start_values``, ``min_value``, ``std_value``) measure how far apart
      the searches land: a wide spread says the bound is loose, and more starts or
      iterations would likely raise it.
    - ``phi = 100 (max - f(x)) / (1 + f(x))``.

    Each evaluation is one forward and backward pass over ``(x, y)``, and each start
    costs up to ``max_iterations`` iterations of them; the full space keeps
    L-BFGS-B's memory of about ``20 n`` float64 numbers, a random subspace ``A`` of ``n p``
    float32 numbers.

    Args:
        model: a compiled model (its loss defines ``f``).
        x, y: the data of ``f`` (Keskar et al.: the training set).
        epsilon: the box size (the paper: 1e-3 and 5e-4).
        subspace: None for the full space; an int ``p`` for a random ``n x p`` subspace
            (100 in the paper); or a matrix ``A`` of shape ``(n, p)``.
        max_iterations: L-BFGS-B iterations.
        batch_size: examples per forward pass (big is fast).
        training: evaluate ``f`` in training mode (see above).
        seed: seed of the random subspace and of the starting points.
        starts: the number of L-BFGS-B searches, each from its own random point (1 is
            the single search of earlier versions, with the same value for the same seed).
        verbose: 1 shows a progress bar over the iterations.

    Returns:
        The `Sharpness`.

    Example:

    >>> from bsi_keras import data, models
    >>> ds = data.synthetic(64, (28, 28, 1))
    >>> model = models.get_model("mnist_cnn")
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> result = sharpness(model, ds.x_train, ds.y_train, subspace=10, max_iterations=2)
    >>> result.dimension, result.value >= 0, result.starts
    (10, True, 3)
    >>> result.min_value <= result.value == max(result.start_values)
    True
    """
    if not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be an int >= 1, got {starts!r}")
    trainable, _ = weight_values(model)
    solution = _flatten(trainable)
    rng = np.random.default_rng(seed)
    if isinstance(subspace, int):
        subspace = random_subspace(solution.size, subspace, seed=int(rng.integers(2**31)))
    half_widths = box_half_widths(solution, epsilon, subspace)
    loss_and_gradient = _loss_and_gradient(model, x, y, batch_size, training)
    loss = evaluate(model, x, y, batch_size=batch_size, training=training).loss
    largest = [loss]  # the current start's largest loss evaluated
    progress = keras.utils.Progbar(
        starts * max_iterations,
        verbose=verbose,
        unit_name="iteration",
        stateful_metrics=["max_loss"],
    )

    def negative_loss(z: np.ndarray) -> tuple[float, np.ndarray]:
        step = z if subspace is None else subspace @ z.astype(np.float32)
        value, gradient = loss_and_gradient(_unflatten(solution + step, trainable))
        largest[0] = max(largest[0], value)
        if subspace is not None:
            gradient = subspace.T @ gradient
        return -value, -gradient.astype(np.float64)

    maxima, iterations, evaluations = [], 0, 0
    for _ in range(starts):
        largest[0] = loss
        result = scipy.optimize.minimize(
            negative_loss,
            rng.uniform(-half_widths, half_widths),
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(-half_widths, half_widths),
            options={"maxiter": max_iterations},
            callback=lambda _: progress.add(1, [("max_loss", largest[0])]),
        )
        maxima.append(largest[0])
        iterations += int(result.nit)
        evaluations += int(result.nfev)
    values = [100.0 * (m - loss) / (1.0 + loss) for m in maxima]
    return Sharpness(
        value=max(values),
        epsilon=epsilon,
        dimension=half_widths.size,
        loss=loss,
        max_loss=max(maxima),
        iterations=iterations,
        evaluations=evaluations,
        start_values=tuple(values),
        min_value=min(values),
        std_value=float(np.std(values)),
    )


def first_order_sharpness(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epsilons: Sequence[float] = EPSILONS,
    batch_size: int = 5000,
    training: bool = False,
) -> dict[float, float]:
    """What `sharpness` would be if ``f`` were linear: the gradient's term alone, per epsilon.

    The linear model ``f(x + z) ~ f(x) + g . z`` is largest over the full-space box
    ``|z_i| <= b_i = eps (|x_i| + 1)`` at the corner ``z = b sign(g)``, where it rises by
    ``sum_i |g_i| b_i``; the value returned is ``100 sum_i |g_i| b_i / (1 + f(x))``, which
    is proportional to ``eps``. A measured sharpness close to it (and halving when ``eps``
    halves) is the first-order term of a solution that is not an exact minimizer, not the
    curvature, which gives a value proportional to ``eps**2``. Costs one gradient.

    Args:
        model: a compiled model.
        x, y: the data of ``f`` (as `sharpness`).
        epsilons: the box sizes.
        batch_size: examples per forward pass.
        training: evaluate ``f`` in training mode (see `sharpness`).

    Returns:
        ``{epsilon: value}``.

    Example:

    >>> from bsi_keras import data, models
    >>> ds = data.synthetic(64, (28, 28, 1))
    >>> model = models.get_model("mnist_cnn")
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> linear = first_order_sharpness(model, ds.x_train, ds.y_train, (1e-3, 5e-4))
    >>> round(linear[1e-3] / linear[5e-4], 6)
    2.0
    """
    trainable, _ = weight_values(model)
    loss, gradient = _loss_and_gradient(model, x, y, batch_size, training)(trainable)
    solution = _flatten(trainable)
    slope = float(np.abs(gradient.astype(np.float64)) @ (np.abs(solution) + 1.0))
    return {eps: 100.0 * eps * slope / (1.0 + loss) for eps in epsilons}


def _loss_and_gradient(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, training: bool
) -> Callable[[list[np.ndarray]], tuple[float, np.ndarray]]:
    """``f`` and its flat gradient (float32) at given trainable values, batch by batch."""
    _, non_trainable = weight_values(model)

    def batch_loss(params: list, xb: np.ndarray, yb: np.ndarray) -> tuple:
        loss, _ = stateless_loss(model, params, non_trainable, xb, yb, training=training)
        return loss, None

    gradient_fn = value_and_grad(batch_loss)

    def loss_and_gradient(trainable: list[np.ndarray]) -> tuple[float, np.ndarray]:
        total, gradient = 0.0, 0.0
        for part in batch_slices(len(x), batch_size):
            (loss, _), grads = gradient_fn(trainable, x[part], y[part])
            weight = (part.stop - part.start) / len(x)
            total += weight * float(loss)
            gradient = gradient + weight * _flatten(keras.ops.convert_to_numpy(g) for g in grads)
        return total, gradient

    return loss_and_gradient


def _flatten(tensors: Iterable[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(t) for t in tensors]).astype(np.float32)


def _unflatten(flat: np.ndarray, like: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cut ``flat`` (float32) into arrays shaped as ``like``."""
    sizes = np.cumsum([t.size for t in like])[:-1]
    flat = flat.astype(np.float32)
    return [part.reshape(t.shape) for part, t in zip(np.split(flat, sizes), like)]
