"""The gradient noise scale of McCandlish et al. 2018, from gradient norms at two batch sizes.

For a batch of ``B`` examples the expected squared norm of the mean gradient is
``E|G_B|^2 = |G|^2 + tr(Sigma) / B``, where ``G`` is the full-data gradient and ``Sigma``
the per-example gradient covariance. Two batch sizes ``b < B`` measured at the same weights
give the unbiased estimates of their Appendix A:

    |G|^2     ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)

and the simple noise scale ``B_simple = tr(Sigma) / |G|^2``, which predicts the largest
useful batch size. Each estimate is noisy (``|G|^2`` can even come out negative), so the
numerator and the denominator are averaged separately over measurements with a
bias-corrected exponential moving average, and the ratio is taken last.

Smith et al.'s SGD noise scale ``lr N / (B (1 - momentum))`` is a different quantity, a
property of the optimizer's settings: see `bsi_keras.schedules.noise_scale`. The closed
form these estimates are tested against is `bsi_keras.analysis.noise_scale`.
"""

from __future__ import annotations

from typing import Any


def estimate(small_sq: Any, big_sq: Any, small: Any, big: Any) -> tuple[Any, Any]:
    """One measurement's unbiased ``(|G|^2, tr(Sigma))`` from two squared gradient norms.

    Plain arithmetic, so the arguments may be numbers, numpy arrays or backend tensors (the
    train step calls it inside the compiled step).

    Args:
        small_sq: ``|G_b|^2``, the squared norm of a batch-``small`` gradient (or the mean of
            several such squared norms at the same weights).
        big_sq: ``|G_B|^2``, the squared norm of the batch-``big`` gradient.
        small: ``b``.
        big: ``B`` (> ``b``).

    Returns:
        The estimates of ``|G|^2`` and ``tr(Sigma)``.

    Example:

    >>> # |G|^2 = 1 and tr(Sigma) = 100 give E|G_10|^2 = 11 and E|G_100|^2 = 2.
    >>> [round(v, 9) for v in estimate(11.0, 2.0, 10, 100)]
    [1.0, 100.0]
    """
    if isinstance(small, (int, float)) and isinstance(big, (int, float)) and not 0 < small < big:
        raise ValueError(f"need 0 < small < big, got {small} and {big}")
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    return grad_sq, trace


def ema_update(
    averages: tuple[Any, Any, Any], grad_sq: Any, trace: Any, decay: float
) -> tuple[Any, Any, Any]:
    """Fold one measurement into the moving averages ``(|G|^2 sum, tr sum, count)``.

    The numerator and the denominator of ``B_simple`` are averaged separately (never the
    ratio); `corrected` removes the EMA's bias towards its zero start.

    Example:

    >>> averages = ema_update((0.0, 0.0, 0.0), 2.0, 100.0, decay=0.5)
    >>> averages
    (1.0, 50.0, 1.0)
    """
    grad_sum, trace_sum, count = averages
    return (
        decay * grad_sum + (1 - decay) * grad_sq,
        decay * trace_sum + (1 - decay) * trace,
        count + 1,
    )


def corrected(averages: tuple[Any, Any, Any], decay: float) -> tuple[Any, Any, Any]:
    """Bias-corrected ``(|G|^2, tr(Sigma), B_simple)`` from `ema_update`'s averages.

    Before any measurement (count 0) everything is NaN.

    Example:

    >>> corrected(ema_update((0.0, 0.0, 0.0), 2.0, 100.0, decay=0.5), decay=0.5)
    (2.0, 100.0, 50.0)
    """
    grad_sum, trace_sum, count = averages
    correction = 1.0 - decay**count
    grad_sq, trace = grad_sum / correction, trace_sum / correction
    return grad_sq, trace, trace / grad_sq
