"""The exact gradient noise of a problem known in closed form, to check measurements against.

`bsi_keras.train_step.noise_scale` estimates ``|G|^2`` and ``tr(Sigma)`` from gradient norms
inside the train step; here the same two quantities are derived analytically for linear least
squares with Gaussian inputs, at any weights, so an estimator (or a run's logged
``gns_grad_sq`` and ``gns_trace``) can be compared with the truth.
"""

from __future__ import annotations

import numpy as np


def least_squares_truth(
    weights: np.ndarray, true_weights: np.ndarray, noise_std: float, dim: int
) -> tuple[float, float]:
    """Exact ``|G|^2`` and ``tr(Sigma)`` of linear least squares with Gaussian inputs.

    The per-example loss ``(x.w - y)^2 / 2`` with ``x ~ N(0, I_dim)`` and
    ``y = x.w* + e``, ``e ~ N(0, noise_std^2)``, has per-example gradient ``x (x.d - e)``
    with ``d = w - w*``. Its mean is ``G = d``; by Isserlis' theorem its second moment is
    ``E[g g^T] = 2 d d^T + (|d|^2 + noise_std^2) I``, so
    ``tr(Sigma) = |d|^2 (dim + 1) + dim * noise_std^2``.

    Args:
        weights: the weights ``w`` where the gradient is taken.
        true_weights: ``w*``.
        noise_std: the label noise's standard deviation.
        dim: the input dimension.

    Returns:
        ``(|G|^2, tr(Sigma))``.

    Example:

    >>> least_squares_truth(np.ones(3), np.zeros(3), 0.0, 3)
    (3.0, 12.0)
    """
    d = np.asarray(weights, dtype=float) - np.asarray(true_weights, dtype=float)
    norm_sq = float(d @ d)
    return norm_sq, norm_sq * (dim + 1) + dim * noise_std**2
